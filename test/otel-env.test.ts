// OTEL_* values the SDK would silently fall back from are said at start-up, and the SDK's own diagnostics
// reach the app's log (a real pino logger writing to a stream) instead of nowhere.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PassThrough } from 'node:stream'
import { diag } from '@opentelemetry/api'
import pino from 'pino'
import { otelEnvProblems, routeDiagnostics } from '../src/otel-env.ts'

test('nothing to say about valid or absent OTEL_* values', () => {
  assert.deepEqual(otelEnvProblems({}), [])
  assert.deepEqual(otelEnvProblems({
    OTEL_TRACES_EXPORTER: 'otlp,console',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.25',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4317',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces',
    OTEL_BSP_MAX_QUEUE_SIZE: '16384'
  }), [])
  assert.deepEqual(otelEnvProblems({
    OTEL_METRICS_EXPORTER: 'prometheus,otlp',
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://127.0.0.1:4318/v1/metrics',
    OTEL_METRIC_EXPORT_INTERVAL: '15000'
  }), [])
  // Metrics variables that matter only when pushing are not judged when nothing is pushed.
  assert.deepEqual(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'none', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'thrift', OTEL_METRIC_EXPORT_INTERVAL: '1m' }), [])
  assert.deepEqual(otelEnvProblems({ OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: 'ignored by always_on' }), [])
})

test('each ignored value is named with what happens instead', () => {
  const say = (env: Record<string, string>): string => otelEnvProblems(env).join(' | ')
  assert.match(say({ OTEL_TRACES_EXPORTER: 'zipkin' }), /"zipkin" not supported here .*; tracing is off/)
  assert.match(say({ OTEL_TRACES_EXPORTER: 'zipkin, otlp' }), /"zipkin" not supported here .*; exporting with otlp only/)
  assert.match(say({ OTEL_TRACES_SAMPLER: 'xray' }), /OTEL_TRACES_SAMPLER="xray" is not supported here .*; using parentbased_always_on/)
  assert.match(say({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }), /OTEL_TRACES_SAMPLER_ARG="1.5" is not a ratio from 0 to 1; sampling every trace/)
  assert.match(say({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: 'abc' }), /"abc" is not a ratio/)
  assert.match(say({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' }), /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="thrift" is not an OTLP protocol .*; using http\/protobuf/)
  assert.match(say({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }), /OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318" is not an http\(s\) URL/)
  assert.match(say({ OTEL_BSP_MAX_QUEUE_SIZE: '10k' }), /OTEL_BSP_MAX_QUEUE_SIZE="10k" is not a positive integer; using the default/)
  assert.match(say({ OTEL_BSP_SCHEDULE_DELAY: '0' }), /OTEL_BSP_SCHEDULE_DELAY="0" is not a positive integer/)
  assert.match(say({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' }), /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="not a url" is not an http\(s\) URL/)
  assert.match(say({ OTEL_METRICS_EXPORTER: 'statsd' }), /OTEL_METRICS_EXPORTER: "statsd" not supported here \(prometheus, otlp, console, none\); \/metrics is served for scraping either way/)
  assert.match(say({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'thrift' }), /OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="thrift" is not an OTLP protocol/)
  assert.match(say({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'collector:4318' }), /OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="collector:4318" is not an http\(s\) URL: metrics cannot be pushed/)
  assert.match(say({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_METRIC_EXPORT_INTERVAL: '1m' }), /OTEL_METRIC_EXPORT_INTERVAL="1m" is not a positive integer/)
  assert.match(say({ OTEL_METRICS_EXPORTER: 'otlp', ACCEPT_STRATEGY: 'cluster-rr', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.instance.id=web-1' }), /every worker of ACCEPT_STRATEGY=cluster-rr pushes its metrics under the same one/)
  assert.deepEqual(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=web-1' }), [], 'one process: its own id')
  assert.deepEqual(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'otlp', ACCEPT_STRATEGY: 'reuseport' }), [], 'workers with ids of their own')
  assert.match(say({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'deltas' }), /TEMPORALITY_PREFERENCE="deltas" is not cumulative, delta or lowmemory; pushing cumulative/)
  assert.deepEqual(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'LowMemory' }), [])
  assert.match(say({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'base2_exponential_bucket_histogram' }), /DEFAULT_HISTOGRAM_AGGREGATION="base2_exponential_bucket_histogram" is not applied: the pushed histograms are the registry's own/)
  assert.deepEqual(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'explicit_bucket_histogram' }), [], 'what it does anyway')
  assert.deepEqual(otelEnvProblems({ OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: 'base2_exponential_bucket_histogram' }), [], 'nothing pushed: nothing to say')
  // The general protocol variable, wrong, is said once, not once per signal.
  assert.equal(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' }).length, 1)
})

function capture (level: string): { log: pino.Logger, lines: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough()
  const chunks: string[] = []
  stream.on('data', (c: Buffer) => chunks.push(c.toString()))
  return { log: pino({ level }, stream), lines: () => chunks.join('').split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>) }
}

test('the SDK\'s diag warnings reach the app\'s log, each at most once a minute; debug only when OTEL_LOG_LEVEL asks', async () => {
  const { log, lines } = capture('info')
  routeDiagnostics(log, {})
  try {
    diag.warn('Propagator "foo" requested through environment variable is unavailable.')
    diag.warn('Propagator "foo" requested through environment variable is unavailable.')
    diag.error('export failed', new Error('ECONNREFUSED'))
    diag.debug('items to be sent', 3)
    // A handler bug repeated on every request: one kind of message, whatever ids it names.
    diag.warn('Cannot execute the operation on ended Span {traceId: 0af7651916cd43dd8448eb211c80319c, spanId: b7ad6b7169203331}')
    diag.warn('Cannot execute the operation on ended Span {traceId: 4bf92f3577b34da6a3ce929d0e0e4736, spanId: 00f067aa0ba902b7}')
    await new Promise(resolve => setImmediate(resolve))
    assert.equal(lines().filter(l => String(l.msg).includes('ended Span')).length, 1)
    assert.deepEqual(lines().filter(l => !String(l.msg).includes('ended Span')).map(l => [l.level, l.component, l.msg]), [
      [40, 'opentelemetry', 'OpenTelemetry: Propagator "foo" requested through environment variable is unavailable.'],
      [50, 'opentelemetry', 'OpenTelemetry: export failed']
    ])
    assert.deepEqual(lines()[1]!.args, ['ECONNREFUSED'])

    const debug = capture('info') // the app logs at info; OTEL_LOG_LEVEL=debug still shows the SDK's debug lines
    routeDiagnostics(debug.log, { OTEL_LOG_LEVEL: 'debug' })
    diag.debug('items to be sent', 3)
    diag.debug('items to be sent', 3)
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(debug.lines().filter(l => !String(l.msg).includes('Registered a global for diag')).map(l => [l.level, l.msg, l.args]), [
      [20, 'OpenTelemetry: items to be sent', [3]], [20, 'OpenTelemetry: items to be sent', [3]]
    ])
  } finally {
    diag.disable()
  }
})
