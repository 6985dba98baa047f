// OTEL_* values the SDK would silently fall back from are said at start-up, and the SDK's own diagnostics
// reach the app's log (a real pino logger writing to a stream) instead of nowhere.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PassThrough } from 'node:stream'
import { diag } from '@opentelemetry/api'
import pino from 'pino'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { envDetector } from '@opentelemetry/resources'
import { otelEnvProblems, otlpDestination, otlpHeaderProblems, routeDiagnostics, sdkDisabled } from '../src/otel-env.ts'
import { resourceAttributeFromEnv, resourceAttributesProblem } from '../src/resource-env.ts'
import { killAll, start } from './helpers/process.ts'
import { until } from './helpers/stand-in-images.ts'

test('nothing to say about valid or absent OTEL_* values', () => {
  assert.deepEqual(otelEnvProblems({}), [])
  assert.deepEqual(otelEnvProblems({
    OTEL_TRACES_EXPORTER: 'otlp,console',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.25',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4317',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4317', // gRPC: no path, and its own port
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

test('OTLP header entries the exporter would drop or cut short are said, by key, never with their values', () => {
  const say = (env: Record<string, string>): string => otelEnvProblems(env).join(' | ')
  assert.deepEqual(otlpHeaderProblems('H', 'authorization=Bearer%20abc, x-scope = tenant-1 ,,a==b'), [], 'spaces around, an empty entry and a second = are all read')
  assert.match(say({ OTEL_EXPORTER_OTLP_HEADERS: 'Authorization: Bearer s3cret' }), /OTEL_EXPORTER_OTLP_HEADERS: entry 1 of 1 \(Authorization\) cannot be read as key=value .*a colon is not an equals sign.*so the exporter sends no such header/)
  assert.match(say({ OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'ok=1,api-key=50%off' }), /OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 2 of 2 \(api-key\) cannot be read .*a literal % is written %25/)
  assert.match(say({ OTEL_EXPORTER_OTLP_HEADERS: 'x-empty=' }), /entry 1 of 1 cannot be read .*\(its value is empty\)/)
  assert.match(say({ OTEL_EXPORTER_OTLP_HEADERS: '=v' }), /entry 1 of 1 cannot be read .*\(it is not key=value\)/)
  assert.match(say({ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=abc;def' }), /the value of entry 1 of 1 \(api-key\) has a ';', where the exporter ends it .*write ; as %3B/)
  // A token pasted without its key: nothing of it is repeated.
  const pasted = say({ OTEL_EXPORTER_OTLP_HEADERS: 'eyJhbGciOiJIUzI1NiJ9.s3cret' })
  assert.match(pasted, /entry 1 of 1 cannot be read/)
  assert.doesNotMatch(pasted, /s3cret|eyJ/)
  // Nor is a key with nothing after it: base64 ends in '=', so it may be a secret's front.
  assert.doesNotMatch(say({ OTEL_EXPORTER_OTLP_HEADERS: 'c2VjcmV0a2V5=' }), /c2Vj/)
  assert.doesNotMatch(say({ OTEL_EXPORTER_OTLP_HEADERS: 'Authorization: Bearer s3cret,k=v;s3cret' }), /s3cret/)
  // Only the variables an exporter reads.
  assert.deepEqual(otelEnvProblems({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_HEADERS: 'bad', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'bad' }), [])
  assert.deepEqual(otelEnvProblems({ OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'bad' }), [], 'metrics not pushed')
  assert.match(say({ OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_HEADERS: 'bad' }), /OTEL_EXPORTER_OTLP_HEADERS: entry 1 of 1/)
  assert.equal(otelEnvProblems({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_HEADERS: 'bad' }).length, 1, 'the general variable, read by both signals, is said once')
})

test('an OTEL_RESOURCE_ATTRIBUTES the SDK would throw away whole is said, and only then: judged as the SDK\'s own detector judges it', () => {
  const values = [
    'deployment.environment=prod,service.namespace=shop', 'a=b,,c=d ', 'k=v%20w', ' spaced = out ', 'k=',
    'deployment.environment=prod,team', 'a=b,k8s.pod.labels=app=web', 'x=50%', '=v', `k=${'v'.repeat(256)}`, `k=${'%41'.repeat(255)}`
  ]
  const saved = process.env.OTEL_RESOURCE_ATTRIBUTES
  try {
    for (const value of values) {
      process.env.OTEL_RESOURCE_ATTRIBUTES = value
      const kept = Object.keys(envDetector.detect().attributes ?? {}).length > 0
      assert.equal(resourceAttributesProblem(value) === undefined, kept, `${JSON.stringify(value)}: the SDK ${kept ? 'kept it' : 'threw it away'}`)
    }
  } finally {
    if (saved === undefined) delete process.env.OTEL_RESOURCE_ATTRIBUTES
    else process.env.OTEL_RESOURCE_ATTRIBUTES = saved
  }
  const say = (env: Record<string, string>): string => otelEnvProblems(env).join(' | ')
  assert.match(say({ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team' }), /OTEL_RESOURCE_ATTRIBUTES: entry 2 of 2 is not key=value, so the SDK ignores every entry of it: spans and pushed metrics carry none of its attributes$/)
  assert.match(say({ OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=w1,k8s.pod.labels=app=web' }), /entry 2 of 2 \(k8s.pod.labels\) has a second = \(written %3D in a key or value\), so the SDK ignores every entry of it/)
  // What the app reads from it itself agrees: nothing from a variable the SDK ignores.
  assert.equal(resourceAttributeFromEnv({ OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=w1,k8s.pod.labels=app=web' }, 'service.instance.id'), undefined)
  assert.equal(resourceAttributeFromEnv({ OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=w%201, k8s.pod.name=p' }, 'service.instance.id'), 'w 1')
  assert.doesNotMatch(say({ OTEL_RESOURCE_ATTRIBUTES: 'owner=s3cret,x=50%' }), /s3cret/, 'values are not repeated')
  assert.deepEqual(otelEnvProblems({ OTEL_TRACES_EXPORTER: 'none', OTEL_RESOURCE_ATTRIBUTES: 'team' }), [], 'nothing exported: nothing carries it')
  assert.equal(otelEnvProblems({ OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'otlp', OTEL_RESOURCE_ATTRIBUTES: 'team' }).length, 1, 'pushed metrics carry it')
})

test('what the start-up log says of OTLP headers is what the exporter sends', async (t) => {
  t.after(killAll)
  const seen: IncomingHttpHeaders[] = []
  const collector = createServer((req, res) => { seen.push(req.headers); req.resume(); req.on('end', () => res.end()) })
  collector.listen(0, '127.0.0.1')
  await once(collector, 'listening')
  t.after(() => { collector.closeAllConnections(); collector.close() })
  const s = await start({
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    OTEL_EXPORTER_OTLP_HEADERS: 'Authorization: Bearer s3cret,api-key=abc;def,x-tenant=t%201',
    OTEL_BSP_SCHEDULE_DELAY: '200'
  })
  assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  const headers = await until('spans exported', async () => seen[0], 10_000, 100)
  assert.equal(headers.authorization, undefined, 'the colon entry is not sent')
  assert.equal(headers['api-key'], 'abc', 'the value is cut at ;')
  assert.equal(headers['x-tenant'], 't 1', 'a well-formed entry is sent, decoded')
  const said = s.logs().split('\n').filter(l => l.includes('OTEL_EXPORTER_OTLP_HEADERS'))
  assert.equal(said.length, 2, said.join('\n'))
  assert.match(said[0]!, /entry 1 of 3 \(Authorization\) cannot be read/)
  assert.match(said[1]!, /entry 2 of 3 \(api-key\) has a ';'/)
  assert.doesNotMatch(s.logs(), /s3cret/, 'no value reaches the log')
})

test('OTLP/HTTP endpoints written with a signal\'s path twice or none are said, naming where the exporters will post', () => {
  const say = (env: Record<string, string>): string => otelEnvProblems(env).join(' | ')
  assert.match(say({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/v1/traces' }), /OTEL_EXPORTER_OTLP_ENDPOINT already ends in a signal's path, and the exporter adds \/v1\/traces to it, posting to http:\/\/c:4318\/v1\/traces\/v1\/traces \(set it to http:\/\/c:4318,/)
  assert.match(say({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://gw.example/otlp/v1/metrics/', OTEL_METRICS_EXPORTER: 'otlp' }), /adds \/v1\/traces and \/v1\/metrics to it, posting to https:\/\/gw.example\/otlp\/v1\/metrics\/v1\/traces and https:\/\/gw.example\/otlp\/v1\/metrics\/v1\/metrics \(set it to https:\/\/gw.example\/otlp,/)
  assert.match(say({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://user:pw@c:4318' }), /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is, with no \/v1\/traces added, and has no path: spans are posted to http:\/\/c:4318\/,/)
  assert.doesNotMatch(say({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://user:pw@c:4318' }), /pw/, 'credentials are not repeated')
  for (const fine of [
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://gw.example/otlp' },
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' },
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom/ingest' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/v1/traces', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/v1/traces', OTEL_TRACES_EXPORTER: 'none' },
    { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318' }
  ]) assert.deepEqual(otelEnvProblems(fine), [], JSON.stringify(fine))
})

test('an endpoint on the other OTLP protocol\'s conventional port is said once per variable, with both ways out', () => {
  const say = (env: Record<string, string>): string[] => otelEnvProblems(env)
  assert.deepEqual(say({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), [
    "OTEL_EXPORTER_OTLP_ENDPOINT is on port 4318, a collector's OTLP/HTTP port, but spans are sent as grpc: if a collector's default receivers listen there, every export fails with a protocol error (its gRPC port is 4317; or set OTEL_EXPORTER_OTLP_PROTOCOL)"
  ])
  const both = say({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_METRICS_EXPORTER: 'otlp' })
  assert.equal(both.length, 1, both.join('\n'))
  assert.match(both[0]!, /port 4317, a collector's OTLP\/gRPC port, but spans and metrics are sent as http\/protobuf.*its HTTP port is 4318/)
  assert.match(say({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4317/v1/traces' }).join(), /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is on port 4317.*or set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL\)/)
  for (const fine of [
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_TRACES_EXPORTER: 'none' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }
  ]) assert.deepEqual(otelEnvProblems(fine), [], JSON.stringify(fine))
})

test('where each signal\'s exporter sends, worked out as the exporter does, with no credentials', () => {
  assert.equal(otlpDestination({}, 'TRACES'), 'http://localhost:4318/v1/traces (http/protobuf)')
  assert.equal(otlpDestination({}, 'METRICS'), 'http://localhost:4318/v1/metrics (http/protobuf)')
  assert.equal(otlpDestination({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'TRACES'), 'http://localhost:4317 (grpc)')
  assert.equal(otlpDestination({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://u:pw@gw.example/otlp/' }, 'TRACES'), 'https://gw.example/otlp/v1/traces (http/protobuf)')
  assert.equal(otlpDestination({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:9090/api/v1/otlp/v1/metrics', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json' }, 'METRICS'), 'http://m:9090/api/v1/otlp/v1/metrics (http/json)')
  assert.equal(otlpDestination({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'TRACES'), 'nowhere: not an http(s) URL (http/protobuf)')
})

/** The start-up line that says where telemetry goes; fails when there is none. */
function telemetryLine (logs: string): { spans: string, metricsPush: string, tailKeep: string } {
  const where = logs.split('\n').find(l => l.includes('"msg":"telemetry"'))
  assert.ok(where !== undefined, 'a telemetry line')
  return JSON.parse(where) as { spans: string, metricsPush: string, tailKeep: string }
}

test('where the start-up log says spans and metrics will be posted is where the exporters post them', async (t) => {
  t.after(killAll)
  const paths: string[] = []
  const collector = createServer((req, res) => { paths.push(req.url!); req.resume(); req.on('end', () => res.end()) })
  collector.listen(0, '127.0.0.1')
  await once(collector, 'listening')
  t.after(() => { collector.closeAllConnections(); collector.close() })
  const base = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`
  const common = { OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'always_on', OTEL_BSP_SCHEDULE_DELAY: '200', OTEL_METRICS_EXPORTER: 'prometheus,otlp', OTEL_METRIC_EXPORT_INTERVAL: '500' }
  for (const [env, expected, spansTo, metricsTo] of [
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: `${base}/v1/traces` }, ['/v1/traces/v1/metrics', '/v1/traces/v1/traces'], '/v1/traces/v1/traces', '/v1/traces/v1/metrics'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: base, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: base }, ['/'], '/', '/']
  ] as const) {
    paths.length = 0
    const s = await start({ ...common, ...env })
    assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
    await until('spans and metrics posted', async () => paths.length >= 2 && paths.some(p => !p.endsWith('metrics')) ? true : undefined, 10_000, 100)
    assert.deepEqual([...new Set(paths)].sort(), expected)
    const said = s.logs().split('\n').filter(l => l.includes('"level":40') && l.includes('ENDPOINT'))
    for (const path of expected) assert.ok(said.some(l => l.includes(`${base}${path}`)), `the log names ${path}: ${said.join('\n')}`)
    // The start-up line that says where telemetry goes names the same places.
    const line = telemetryLine(s.logs())
    assert.equal(line.tailKeep, 'requests of 500 ms or more, and 5xx and cut-off ones, whatever the head sampler said (at most 100 a second by each rule)')
    // Each signal's own path, not merely one that arrived.
    assert.ok(expected.some(p => line.spans.startsWith(`OTLP to ${base}${p} (http/protobuf)`)), line.spans)
    assert.ok(line.spans.startsWith(`OTLP to ${base}${spansTo} (http/protobuf)`), line.spans)
    assert.ok(expected.some(p => line.metricsPush.startsWith(`OTLP to ${base}${p} (http/protobuf) every 0.5 s`)), line.metricsPush)
    assert.ok(line.metricsPush.startsWith(`OTLP to ${base}${metricsTo} (http/protobuf) every 0.5 s`), line.metricsPush)
    s.child.kill('SIGTERM')
    await s.exited
  }
})

test('OTEL_SDK_DISABLED is read as the SDK reads it: only "true", trimmed and in any case, turns telemetry off; another value is said once', () => {
  for (const v of ['true', 'TRUE', ' True ']) assert.equal(sdkDisabled({ OTEL_SDK_DISABLED: v }).disabled, true, v)
  for (const v of ['false', '', ' ']) assert.deepEqual(sdkDisabled({ OTEL_SDK_DISABLED: v }), { disabled: false }, v)
  assert.deepEqual(sdkDisabled({}), { disabled: false })
  for (const v of ['1', 'yes', 'on']) {
    assert.deepEqual(sdkDisabled({ OTEL_SDK_DISABLED: v }), { disabled: false, unknown: v })
    // Tracing: the SDK reads it too and says so itself (its diag line reaches the log), so not twice.
    assert.deepEqual(otelEnvProblems({ OTEL_SDK_DISABLED: v, OTEL_METRICS_EXPORTER: 'otlp' }), [])
    assert.deepEqual(otelEnvProblems({ OTEL_SDK_DISABLED: v, OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'otlp' }), [`OTEL_SDK_DISABLED="${v}" is not true or false: the metrics push stays on (only "true", in any case, turns it off)`])
    assert.deepEqual(otelEnvProblems({ OTEL_SDK_DISABLED: v, OTEL_TRACES_EXPORTER: 'none' }), [], 'nothing it would turn off')
  }
  // Off: no setting is used, so none is warned about.
  const mistakes = { OTEL_TRACES_EXPORTER: 'otlp,zipkin', OTEL_EXPORTER_OTLP_HEADERS: 'Authorization: Bearer x', OTEL_RESOURCE_ATTRIBUTES: 'team' }
  assert.equal(otelEnvProblems(mistakes).length, 3)
  assert.deepEqual(otelEnvProblems({ ...mistakes, OTEL_SDK_DISABLED: ' TRUE' }), [])
})

test('OTEL_SDK_DISABLED=" TRUE" sends nothing and says so; "1" or "yes" leaves telemetry on, said once', async (t) => {
  t.after(killAll)
  const paths: string[] = []
  const posted = (path: string): boolean => paths.includes(path)
  const collector = createServer((req, res) => { paths.push(req.url!); req.resume(); req.on('end', () => res.end()) })
  collector.listen(0, '127.0.0.1')
  await once(collector, 'listening')
  t.after(() => { collector.closeAllConnections(); collector.close() })
  const common = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`, OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'always_on', OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_METRICS_EXPORTER: 'prometheus,otlp', OTEL_METRIC_EXPORT_INTERVAL: '200' }

  const off = await start({ ...common, OTEL_SDK_DISABLED: ' TRUE' })
  assert.equal((await fetch(`http://127.0.0.1:${off.ports.http}/`)).status, 200)
  await new Promise(resolve => setTimeout(resolve, 1000)) // five push intervals, ten span batches
  assert.deepEqual(paths, [], 'nothing posted')
  const { spans, metricsPush } = telemetryLine(off.logs())
  assert.deepEqual({ spans, metricsPush }, { spans: 'off', metricsPush: 'off' })
  assert.doesNotMatch(off.logs(), /OTEL_SDK_DISABLED/)
  off.child.kill('SIGTERM')
  await off.exited

  // Tracing and pushing: both go out, and the one line about it is the SDK's own, through diag.
  const on = await start({ ...common, OTEL_SDK_DISABLED: '1' })
  assert.equal((await fetch(`http://127.0.0.1:${on.ports.http}/`)).status, 200)
  await until('spans and metrics posted', async () => posted('/v1/traces') && posted('/v1/metrics') ? true : undefined, 10_000, 50)
  const said = (logs: string): string[] => logs.split('\n').filter(l => l.includes('OTEL_SDK_DISABLED'))
  assert.equal(said(on.logs()).length, 1, on.logs())
  assert.match(said(on.logs())[0]!, /"level":40[^\n]*Unknown value '1' for OTEL_SDK_DISABLED/)
  on.child.kill('SIGTERM')
  await on.exited

  // Pushing metrics only: no SDK reads the variable, so the app says it.
  paths.length = 0
  const push = await start({ ...common, OTEL_TRACES_EXPORTER: 'none', OTEL_SDK_DISABLED: 'yes' })
  await until('metrics posted', async () => posted('/v1/metrics') ? true : undefined, 10_000, 50)
  assert.equal(said(push.logs()).length, 1, push.logs())
  assert.match(said(push.logs())[0]!, /"level":40[^\n]*OTEL_SDK_DISABLED=\\"yes\\" is not true or false: the metrics push stays on/)
  push.child.kill('SIGTERM')
  await push.exited
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
