// Every variable: its default, a valid value, and an invalid one that names it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError, loadConfig } from '../src/config.ts'
import { exportThread, SPAN_QUEUE_DEFAULTS } from '../src/telemetry.ts'
import { otlpProtocol } from '../src/otel-env.ts'
import { rootRatioOf, samplerFromEnv } from '../src/journey/sampling.ts'

test('defaults', () => {
  const c = loadConfig({})
  assert.equal(c.httpPort, 3000)
  assert.equal(c.httpsPort, 3443)
  assert.equal(c.metricsPort, 9464)
  assert.equal(c.metricsHost, '127.0.0.1')
  assert.equal(c.host, '0.0.0.0')
  assert.equal(c.precision, 'default')
  assert.equal(c.keepErrors, true)
  assert.equal(c.serviceName, 'request-journey')
  assert.equal(c.tlsCert, undefined)
  assert.equal(c.listenBacklog, 511, 'the backlog Node uses when none is given')
  assert.equal(c.maxConnections, undefined, 'no limit unless MAX_CONNECTIONS is set')
})

test('the service name: OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES (as the specification orders them), else request-journey', () => {
  assert.equal(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=checkout' }).serviceName, 'checkout')
  assert.equal(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=a%20b,service.name=later' }).serviceName, 'later', 'the last entry wins, as in the SDK')
  assert.equal(loadConfig({ OTEL_SERVICE_NAME: 'cart', OTEL_RESOURCE_ATTRIBUTES: 'service.name=checkout' }).serviceName, 'cart')
  // A variable the SDK ignores whole gives nothing here either (the start-up log says why).
  assert.equal(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=checkout,team' }).serviceName, 'request-journey')
  assert.equal(loadConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=' }).serviceName, 'request-journey', 'an empty name names nothing')
})

const integers: Array<[string, keyof ReturnType<typeof loadConfig>, string, string]> = [
  ['HTTP_PORT', 'httpPort', '8080', '65536'],
  ['HTTPS_PORT', 'httpsPort', '8443', '-1'],
  ['METRICS_PORT', 'metricsPort', '9000', '1.5'],
  ['HEADERS_TIMEOUT_MS', 'headersTimeoutMs', '2000', '99'],
  ['REQUEST_TIMEOUT_MS', 'requestTimeoutMs', '60000', 'soon'],
  ['KEEP_ALIVE_TIMEOUT_MS', 'keepAliveTimeoutMs', '1000', '0'],
  ['CONNECTION_TIMEOUT_MS', 'connectionTimeoutMs', '0', '-1'],
  ['TLS_HANDSHAKE_TIMEOUT_MS', 'tlsHandshakeTimeoutMs', '2000', '50'],
  ['MAX_HEADER_SIZE', 'maxHeaderSize', '8192', '100'],
  ['BODY_LIMIT_BYTES', 'bodyLimitBytes', '1024', '0'],
  ['SHUTDOWN_TIMEOUT_MS', 'shutdownTimeoutMs', '0', '1e3'],
  ['COMPUTE_MAX_MS', 'computeMaxMs', '100', '60001'],
  ['IO_MAX_MS', 'ioMaxMs', '100', 'x'],
  ['DOWNLOAD_MAX_KB', 'downloadMaxKb', '1', ' 12 kb'],
  ['WORKER_THREADS', 'workerThreads', '4', '0'],
  ['JOURNEY_SLOW_MS', 'slowThresholdMs', '0', '-5'],
  ['JOURNEY_KEEP_PER_SECOND', 'keepLimitPerSecond', '0', '1.5'],
  ['LISTEN_BACKLOG', 'listenBacklog', '16', '0'],
  ['MAX_CONNECTIONS', 'maxConnections', '100', '0']
]
for (const [name, key, good, bad] of integers) {
  test(`${name}: accepts ${good}, rejects ${JSON.stringify(bad)} by name`, () => {
    assert.equal(loadConfig({ [name]: good })[key], Number(good))
    assert.throws(() => loadConfig({ [name]: bad }), (err: Error) => err instanceof ConfigError && err.message.startsWith(`${name}=`))
  })
}

test('enums and booleans', () => {
  assert.equal(loadConfig({ LOG_LEVEL: 'WARN' }).logLevel, 'warn')
  assert.throws(() => loadConfig({ LOG_LEVEL: 'verbose' }), /LOG_LEVEL=/)
  assert.equal(loadConfig({ JOURNEY_KEEP_ERRORS: 'false' }).keepErrors, false)
  assert.equal(loadConfig({ JOURNEY_KEEP_ERRORS: '0' }).keepErrors, false)
  assert.equal(loadConfig({ JOURNEY_KEEP_ERRORS: '1' }).keepErrors, true)
  assert.throws(() => loadConfig({ JOURNEY_KEEP_ERRORS: 'maybe' }), /JOURNEY_KEEP_ERRORS=/)
  assert.equal(loadConfig({}).recordExceptions, true)
  assert.equal(loadConfig({ JOURNEY_RECORD_EXCEPTIONS: 'false' }).recordExceptions, false)
  assert.equal(loadConfig({ OTEL_SERVICE_NAME: 'shop' }).serviceName, 'shop')
  assert.equal(loadConfig({}).journeyEnabled, true)
  assert.equal(loadConfig({ JOURNEY_ENABLED: 'false' }).journeyEnabled, false)
  assert.throws(() => loadConfig({ JOURNEY_ENABLED: 'off' }), /JOURNEY_ENABLED=/)
  assert.equal(loadConfig({ JAEGER_UI_URL: 'http://localhost:16686/' }).jaegerUiUrl, 'http://localhost:16686')
  assert.throws(() => loadConfig({ JAEGER_UI_URL: 'localhost:16686' }), /JAEGER_UI_URL="localhost:16686" is not valid: expected an http\(s\) URL/)
  assert.equal(loadConfig({ HOST: '::', METRICS_HOST: '0.0.0.0' }).metricsHost, '0.0.0.0')
})

test('JOURNEY_RECORD_HEADERS is an allowlist of header names that never includes credentials', () => {
  assert.deepEqual(loadConfig({}).recordHeaders, [])
  assert.deepEqual(loadConfig({ JOURNEY_RECORD_HEADERS: 'User-Agent, x-request-id' }).recordHeaders, ['user-agent', 'x-request-id'])
  assert.throws(() => loadConfig({ JOURNEY_RECORD_HEADERS: 'user-agent,authorization' }), /may not record authorization/)
  assert.throws(() => loadConfig({ JOURNEY_RECORD_HEADERS: 'Cookie' }), /may not record cookie/)
  assert.throws(() => loadConfig({ JOURNEY_RECORD_HEADERS: 'bad header' }), /not a header name/)
  assert.deepEqual(loadConfig({ JOURNEY_RECORD_RESPONSE_HEADERS: 'Content-Encoding' }).recordResponseHeaders, ['content-encoding'])
  assert.throws(() => loadConfig({ JOURNEY_RECORD_RESPONSE_HEADERS: 'cache-control, set-cookie' }), /JOURNEY_RECORD_RESPONSE_HEADERS may not record set-cookie/)
})

test('CONNECTION_TIMEOUT_MS: a minute by default, and longer than the demo routes may stay silent', () => {
  assert.equal(loadConfig({}).connectionTimeoutMs, 60_000)
  assert.equal(loadConfig({ CONNECTION_TIMEOUT_MS: '20000' }).connectionTimeoutMs, 20_000)
  assert.throws(() => loadConfig({ CONNECTION_TIMEOUT_MS: '10000' }), /CONNECTION_TIMEOUT_MS=10000 must exceed IO_MAX_MS and COMPUTE_MAX_MS \(10000\)/)
  assert.throws(() => loadConfig({ CONNECTION_TIMEOUT_MS: '1000', IO_MAX_MS: '500' }), /must exceed IO_MAX_MS and COMPUTE_MAX_MS \(2000\)/)
  assert.equal(loadConfig({ CONNECTION_TIMEOUT_MS: '1000', IO_MAX_MS: '500', COMPUTE_MAX_MS: '500' }).connectionTimeoutMs, 1000)
  assert.equal(loadConfig({ IO_MAX_MS: '120000' }).connectionTimeoutMs, 130_000, 'unset, it outlasts a raised IO_MAX_MS')
})

test('TLS_CERT and TLS_KEY come together', () => {
  assert.throws(() => loadConfig({ TLS_KEY: '/k.pem' }), /TLS_CERT and TLS_KEY must be set together/)
  const c = loadConfig({ TLS_CERT: '/c.pem', TLS_KEY: '/k.pem' })
  assert.equal(c.tlsCert, '/c.pem')
})

test('cross-variable rules', () => {
  assert.throws(() => loadConfig({ HEADERS_TIMEOUT_MS: '5000', REQUEST_TIMEOUT_MS: '4000' }), /must not exceed REQUEST_TIMEOUT_MS/)
  assert.throws(() => loadConfig({ METRICS_PORT: '3000' }), /must differ/)
  assert.doesNotThrow(() => loadConfig({ HTTP_PORT: '0', HTTPS_PORT: '0', METRICS_PORT: '0' }), 'ephemeral ports may repeat')
  assert.throws(() => loadConfig({ ACCEPT_STRATEGY: 'reuseport', HTTP_PORT: '0' }), /reuseport needs fixed HTTP_PORT/)
  assert.throws(() => loadConfig({ ACCEPT_STRATEGY: 'round-robin' }), /ACCEPT_STRATEGY/)
  assert.throws(() => loadConfig({ WORKERS: '0' }), /WORKERS/)
  const c = loadConfig({ ACCEPT_STRATEGY: 'cluster-shared', WORKERS: '4' })
  assert.equal(c.acceptStrategy, 'cluster-shared')
  assert.equal(c.workers, 4)
})

test('OTLP protocol: the specification\'s default, the traces-specific variable first, unknown values named', () => {
  assert.deepEqual(otlpProtocol({}), { protocol: 'http/protobuf' })
  assert.deepEqual(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), { protocol: 'http/json' })
  assert.deepEqual(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }), { protocol: 'grpc' })
  assert.deepEqual(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: ' GRPC ' }), { protocol: 'grpc' })
  assert.deepEqual(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }), { protocol: 'http/protobuf', unknown: 'thrift' })
})

test('JOURNEY_EXPORT_THREAD: auto is a worker up to 10 % head sampling, the serving thread above; explicit values win', () => {
  assert.equal(loadConfig({}).exportThread, 'auto')
  assert.equal(loadConfig({ JOURNEY_EXPORT_THREAD: 'worker' }).exportThread, 'worker')
  assert.throws(() => loadConfig({ JOURNEY_EXPORT_THREAD: 'thread' }), /JOURNEY_EXPORT_THREAD="thread" is not valid: expected one of auto, worker, main/)
  assert.equal(loadConfig({}).exportConcurrency, SPAN_QUEUE_DEFAULTS.maxConcurrentExports, 'one default, two places')
  assert.equal(loadConfig({ JOURNEY_EXPORT_CONCURRENCY: '1' }).exportConcurrency, 1)
  assert.throws(() => loadConfig({ JOURNEY_EXPORT_CONCURRENCY: '31' }), /JOURNEY_EXPORT_CONCURRENCY=31 is out of range/)
  assert.equal(exportThread('auto', 1), 'main')
  assert.equal(exportThread('auto', 0.1), 'worker')
  assert.equal(exportThread('auto', 0.01), 'worker')
  assert.equal(exportThread('auto', 0), 'worker')
  assert.equal(exportThread('auto', 0.5), 'main')
  // A custom sampler's ratio is unknown: the serving thread, as the SDK would do.
  assert.equal(exportThread('auto', undefined), 'main')
  assert.equal(exportThread('worker', 1), 'worker')
  assert.equal(exportThread('main', 0.01), 'main')
  assert.equal(rootRatioOf(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.05' })), 0.05)
  assert.equal(rootRatioOf(samplerFromEnv({})), 1)
})
