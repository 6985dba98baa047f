// OTEL_METRICS_EXPORTER=otlp: the server (src/main.ts, a real process) pushes what /metrics serves to an
// OTLP/HTTP receiver, under the resource its spans carry; with nothing listening there it serves every
// request and says so in its log once; unset, it pushes nothing.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, test } from 'node:test'
import { once } from 'node:events'
import { collectorThatNeverAnswers, killAll, start, type Started } from './helpers/process.ts'
import { until as poll } from './helpers/stand-in-images.ts'
import { parseMetrics, sample, series } from '../experiments/lib/metrics.ts'
import { watchCollections } from '../src/metrics-export.ts'

after(killAll)

interface OtlpAttribute { key: string, value: { stringValue?: string, intValue?: number | string } }
interface OtlpMetric { name: string, unit?: string, histogram?: { aggregationTemporality: number, dataPoints: Array<{ attributes: OtlpAttribute[], count: number | string, sum: number, bucketCounts: Array<number | string>, explicitBounds: number[] }> } }
interface OtlpMetricsRequest { resourceMetrics: Array<{ resource: { attributes: OtlpAttribute[] }, scopeMetrics: Array<{ scope: { name: string }, metrics: OtlpMetric[] }> }> }

interface OtlpTracesRequest { resourceSpans: Array<{ resource: { attributes: OtlpAttribute[] } }> }

/** An OTLP/HTTP JSON receiver: every metrics and traces request body it took, parsed. */
async function receiver (): Promise<{ base: string, endpoint: string, pushes: OtlpMetricsRequest[], traces: OtlpTracesRequest[], server: Server }> {
  const pushes: OtlpMetricsRequest[] = []
  const traces: OtlpTracesRequest[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      if (req.url === '/v1/metrics') pushes.push(JSON.parse(body) as OtlpMetricsRequest)
      if (req.url === '/v1/traces') traces.push(JSON.parse(body) as OtlpTracesRequest)
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  after(() => { server.close() })
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return { base, endpoint: `${base}/v1/metrics`, pushes, traces, server }
}

/** Polls every 50 ms for up to 10 s (the helper's own interval is a container's 1 s). */
async function until<T> (what: string, f: () => Promise<T | undefined> | T | undefined): Promise<T> {
  return await poll(what, f, 10_000, 50)
}

const attrs = (list: OtlpAttribute[]): Record<string, string | undefined> =>
  Object.fromEntries(list.map(a => [a.key, a.value.stringValue ?? (a.value.intValue === undefined ? undefined : String(a.value.intValue))]))

async function stop (s: Started): Promise<number | null> {
  s.child.kill('SIGTERM')
  return (await s.exited).code
}

test('pushed by OTLP/HTTP (JSON): the request histogram counts what /metrics counts, under the resource of the process\'s spans (its service.instance.id is target_info\'s)', async () => {
  const r = await receiver()
  const s = await start({
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: r.base,
    OTEL_METRIC_EXPORT_INTERVAL: '200',
    OTEL_BSP_SCHEDULE_DELAY: '100'
  })
  for (let i = 0; i < 4; i++) assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  const point = await until('a push with the four requests', () => {
    for (const push of r.pushes.toReversed()) {
      for (const m of push.resourceMetrics.flatMap(x => x.scopeMetrics).flatMap(x => x.metrics)) {
        if (m.name !== 'http_server_request_duration_seconds') continue
        const p = m.histogram!.dataPoints.find(d => attrs(d.attributes).http_route === '/')
        if (p !== undefined && Number(p.count) === 4) return { m, p, resource: attrs(push.resourceMetrics[0]!.resource.attributes) }
      }
    }
    return undefined
  })
  const scraped = parseMetrics(await (await fetch(`http://127.0.0.1:${s.ports.metrics}/metrics`)).text())
  const labels = attrs(point.p.attributes) as Record<string, string>
  assert.equal(sample(scraped, 'http_server_request_duration_seconds_count', labels), 4)
  assert.equal(point.p.sum, sample(scraped, 'http_server_request_duration_seconds_sum', labels))
  assert.equal(point.m.unit, 's')
  assert.equal(point.m.histogram!.aggregationTemporality, 2, 'OTLP\'s CUMULATIVE')
  assert.equal(point.p.bucketCounts.map(Number).reduce((a, b) => a + b, 0), 4)
  assert.equal(point.p.bucketCounts.length, point.p.explicitBounds.length + 1)
  assert.ok(sample(scraped, 'journey_metric_pushes_total', { result: 'success' }) >= 1, 'the pushes that got through are counted')
  assert.equal(sample(scraped, 'journey_metric_pushes_total', { result: 'failure' }), 0)
  const targetInfo = [...series(scraped, 'target_info')][0]?.[0]
  assert.equal(point.resource['service.name'], 'request-journey')
  assert.equal(point.resource['service.instance.id'], targetInfo?.get('service_instance_id'))
  assert.equal(point.resource['telemetry.sdk.language'], 'nodejs')
  // The default metrics come along (the registry's, not only the journey's).
  const names = new Set(r.pushes.at(-1)!.resourceMetrics.flatMap(x => x.scopeMetrics).flatMap(x => x.metrics).map(m => m.name))
  for (const n of ['journey_stage_duration_seconds', 'journey_connections_accepted_total', 'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_p99_seconds']) assert.ok(names.has(n), n)
  assert.ok(!names.has('target_info'), 'the scrape\'s stand-in for the resource stays out of a push, which carries the resource')

  const before = r.pushes.length
  assert.equal(await stop(s), 0)
  assert.ok(r.pushes.length > before, 'a last push at shutdown')
  const spanResource = attrs(r.traces[0]?.resourceSpans[0]?.resource.attributes ?? [])
  for (const key of ['service.name', 'service.instance.id', 'host.name', 'process.pid', 'telemetry.sdk.version']) {
    assert.ok(point.resource[key] !== undefined, key)
    assert.equal(point.resource[key], spanResource[key], `${key}: the spans' and the metrics' resource agree`)
  }
})

test('the last push is made at shutdown: with the interval not yet reached, stopping sends the counts once', async () => {
  const r = await receiver()
  const s = await start({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: r.endpoint, OTEL_METRIC_EXPORT_INTERVAL: '600000' })
  for (let i = 0; i < 2; i++) assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  assert.equal(r.pushes.length, 0, 'nothing before the interval')
  assert.equal(await stop(s), 0)
  assert.equal(r.pushes.length, 1, 'one push, at shutdown')
  const counts = r.pushes[0]!.resourceMetrics.flatMap(x => x.scopeMetrics).flatMap(x => x.metrics)
    .filter(m => m.name === 'http_server_request_duration_seconds')
    .flatMap(m => m.histogram!.dataPoints.filter(d => attrs(d.attributes).http_route === '/').map(d => Number(d.count)))
  assert.deepEqual(counts, [2])
})

test('OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta: pushes carry what changed, and over all of them add up to what /metrics counts', async () => {
  const r = await receiver()
  const s = await start({
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: r.endpoint,
    OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
    OTEL_METRIC_EXPORT_INTERVAL: '150'
  })
  const requestPoints = (): Array<{ temporality: number, count: number }> => r.pushes.flatMap(push => push.resourceMetrics)
    .flatMap(x => x.scopeMetrics).flatMap(x => x.metrics).filter(m => m.name === 'http_server_request_duration_seconds')
    .flatMap(m => m.histogram!.dataPoints.filter(d => attrs(d.attributes).http_route === '/').map(d => ({ temporality: m.histogram!.aggregationTemporality, count: Number(d.count) })))
  const total = (): number => requestPoints().reduce((n, p) => n + p.count, 0)
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  await until('the first three pushed', () => total() === 3 ? true : undefined)
  await new Promise(resolve => setTimeout(resolve, 400)) // more pushes, nothing new to say about /
  assert.equal(total(), 3, 'unchanged: not sent again')
  assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  await until('the fourth pushed', () => total() === 4 ? true : undefined)
  assert.ok(requestPoints().every(p => p.temporality === 1), 'OTLP\'s DELTA')
  assert.ok(requestPoints().length >= 2, 'in more than one push')
  const scraped = parseMetrics(await (await fetch(`http://127.0.0.1:${s.ports.metrics}/metrics`)).text())
  assert.equal(sample(scraped, 'http_server_request_duration_seconds_count', { http_route: '/' }), 4)
  assert.equal(await stop(s), 0)
})

test('with no collector at the endpoint, every request is served, the failure is said once, and the process still exits 0 within its shutdown deadline', async () => {
  const closed = createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const port = (closed.address() as { port: number }).port
  closed.close()
  // The exporter's own timeout short, so it stops retrying a refused push (and calls back) within the test.
  const s = await start({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://127.0.0.1:${port}/v1/metrics`, OTEL_METRIC_EXPORT_INTERVAL: '100', OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '1000' })
  for (let i = 0; i < 20; i++) {
    assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  // Refused at once, the push fails (the global error handler's line); still retrying at the interval's
  // end, it times out (the SDK's diag line). Either is said at most once a minute.
  const failures = (): string[] => s.logs().split('\n').filter(l => l.includes('telemetry export failed') || l.includes('metrics export timed out'))
  await until('the failure in the log', () => failures().length > 0 ? true : undefined)
  assert.ok(failures().length <= 2 && new Set(failures().map(l => l.includes('timed out'))).size === failures().length, failures().join('\n'))
  // Counted too, for a graph or an alert: the log says it once a minute, the counter every time.
  const pushes = async (): Promise<{ success: number, failure: number }> => {
    const m = parseMetrics(await (await fetch(`http://127.0.0.1:${s.ports.metrics}/metrics`)).text())
    return { success: sample(m, 'journey_metric_pushes_total', { result: 'success' }), failure: sample(m, 'journey_metric_pushes_total', { result: 'failure' }) }
  }
  const counted = await until('a failed push counted', async () => { const c = await pushes(); return c.failure >= 1 ? c : undefined })
  assert.equal(counted.success, 0)
  const t0 = performance.now()
  assert.equal(await stop(s), 0)
  assert.ok(performance.now() - t0 < 6_000, 'shutdown is held by the refused push no longer than its deadline (3 s)')
})

test('a collector that never answers, for spans and metrics both: shutdown waits for the two together, one deadline, one line naming both', async () => {
  const collector = await collectorThatNeverAnswers()
  const s = await start({
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_EXPORTER_OTLP_ENDPOINT: collector,
    // Only the shutdown flush and the shutdown push try to send.
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    OTEL_METRIC_EXPORT_INTERVAL: '600000'
  })
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  const t0 = performance.now()
  assert.equal(await stop(s), 0)
  const ms = performance.now() - t0
  const lines = s.logs().split('\n').filter(l => l.includes('telemetry flush at shutdown'))
  assert.equal(lines.length, 1, lines.join('\n'))
  assert.match(lines[0]!, /did not finish in time; spans still queued and the last metrics push were not delivered/)
  // One 3 s deadline for both (≈ 3.1 s here); one after the other, they took 6 s. The margin is for a slow host.
  assert.ok(ms < 5_500, `exited ${Math.round(ms)} ms after SIGTERM`)
})

test('a collector that never answers metrics, with tracing off: shutdown waits for the last push at most its deadline, and one line says it alone was lost', async () => {
  const collector = await collectorThatNeverAnswers()
  const s = await start({
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_EXPORTER_OTLP_ENDPOINT: collector,
    OTEL_METRIC_EXPORT_INTERVAL: '600000' // only the shutdown push tries to send
  })
  assert.equal((await fetch(`http://127.0.0.1:${s.ports.http}/`)).status, 200)
  const t0 = performance.now()
  assert.equal(await stop(s), 0)
  const ms = performance.now() - t0
  const lines = s.logs().split('\n').filter(l => l.includes('telemetry flush at shutdown'))
  assert.equal(lines.length, 1, lines.join('\n'))
  // No spans are named: none were exported, so none were lost.
  assert.match(lines[0]!, /did not finish in time; the last metrics push was not delivered"/)
  assert.ok(ms < 5_500, `exited ${Math.round(ms)} ms after SIGTERM`)
})

test('shutdown\'s wait for the registry to be read: a collection already running when it asks does not count, only one begun after it, once finished', async () => {
  const release: Array<() => void> = []
  const w = watchCollections({
    collect: async () => {
      await new Promise<void>(resolve => release.push(resolve))
      return { resourceMetrics: { resource: undefined as never, scopeMetrics: [] }, errors: [] }
    }
  })
  const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }
  const running = w.producer.collect() // a periodic collection, perhaps from before the last request ended
  let read = false
  const next = w.next().then(() => { read = true })
  release.shift()!()
  await running
  await tick()
  assert.equal(read, false, 'a collection begun before the mark is not the one asked for')
  const last = w.producer.collect()
  await tick()
  assert.equal(read, false, 'begun, not finished')
  release.shift()!()
  await last
  await next
  assert.equal(read, true)
})

test('unset, nothing is pushed, even with an OTLP endpoint set for traces; an unknown exporter name is said at start-up', async () => {
  const r = await receiver()
  const s = await start({ OTEL_EXPORTER_OTLP_ENDPOINT: r.endpoint.replace('/v1/metrics', ''), OTEL_METRIC_EXPORT_INTERVAL: '100' })
  for (let i = 0; i < 3; i++) await (await fetch(`http://127.0.0.1:${s.ports.http}/`)).arrayBuffer()
  await new Promise(resolve => setTimeout(resolve, 500))
  assert.equal(await stop(s), 0)
  assert.equal(r.pushes.length, 0)

  const w = await start({ OTEL_METRICS_EXPORTER: 'prometheus,statsd' })
  assert.match(w.logs(), /OTEL_METRICS_EXPORTER: \\"statsd\\" not supported here/)
  assert.equal(await stop(w), 0)
})
