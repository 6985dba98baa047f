// Every dashboard query against a real Prometheus: the shipped config (only the target rewritten to this
// host) passes promtool, Prometheus scrapes the real server while a mixed workload runs, and then each PromQL
// expression of each panel must parse and return at least one series. A panel that would be empty fails here.
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { createServer as createHttpServer, type Server } from 'node:http'
import { Pool } from 'undici'
import { after, before, test } from 'node:test'
import { DASHBOARDS, queriesOf, requestJourneyDashboard } from '../../grafana/dashboards.ts'
import { runWorkload } from '../../experiments/lib/workload.ts'
import { killAll, start, type Started } from '../helpers/process.ts'
import { connect } from '../helpers/raw.ts'
import { expand, skipWithoutPrometheus as skip, startPrometheus, type Prometheus } from '../helpers/prometheus.ts'

let app: Started
let prometheus: Prometheus | undefined
let collector: Server
const promApi = (path: string, params: Record<string, string>): Promise<any> => prometheus!.api(path, params)

before(async () => {
  if (skip !== false) return
  // Spans go to a local OTLP/HTTP receiver, so the export-pipeline panels have data and exemplars exist.
  collector = createHttpServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(200).end()) })
  await new Promise<void>(resolve => collector.listen(0, '127.0.0.1', resolve))
  app = await start({
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    OTEL_BSP_SCHEDULE_DELAY: '500',
    JOURNEY_KERNEL_SAMPLE_MS: '100', // as in docker-compose.yml
    LOG_LEVEL: 'info'
  })
  prometheus = await startPrometheus(`127.0.0.1:${app.ports.metrics}`)

  // Traffic for every panel: all routes over HTTP and HTTPS (fresh and reused connections), plus the
  // failures the error panels count — a malformed request and a TLS client speaking plain HTTP.
  const http = `http://127.0.0.1:${app.ports.http}`
  const https = `https://127.0.0.1:${app.ports.https}`
  const bad = async (): Promise<void> => {
    const c = await connect(app.ports.http)
    await c.write('NOT A REQUEST\r\n\r\n')
    assert.match(await c.read(), /^HTTP\/1\.1 400/)
    const plain = await connect(app.ports.https)
    await plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await plain.read() // the server drops the connection: a failed TLS handshake, reason plain_http
  }
  await Promise.all([runWorkload({ httpUrl: http, httpsUrl: https, seconds: 16, concurrency: 3, pauseMs: 10 }), bad()])
  // Two scrapes after the traffic, so every rate() over the window has its samples.
  await new Promise(resolve => setTimeout(resolve, 11_000))
})

after(async () => {
  prometheus?.stop()
  if (app !== undefined) { app.child.kill('SIGTERM'); await app.exited }
  collector?.close()
  killAll()
})

test('Prometheus scrapes the app as an up target of the shipped job', { skip }, async () => {
  const data = await promApi('/api/v1/query', { query: 'up{job="request-journey"}' })
  assert.equal(data.result.length, 1)
  assert.equal(data.result[0].value[1], '1')
})

for (const [file, build] of Object.entries(DASHBOARDS)) {
  test(`${file}: every panel query parses and returns at least one series with a value`, { skip }, async (ctx) => {
    const empty: string[] = []
    const queries = queriesOf(build())
    for (const q of queries) {
      const data = await promApi('/api/v1/query', { query: expand(q.expr) })
      // A series whose every value is NaN (a quantile of nothing) draws nothing either.
      const drawable = (data.result as Array<{ value: [number, string] }>).filter(r => Number.isFinite(Number(r.value[1])))
      if (drawable.length === 0) empty.push(`${q.panel}: ${q.expr}`)
    }
    ctx.diagnostic(`${queries.length} queries evaluated`)
    assert.deepEqual(empty, [], 'queries that returned no series with a value')
  })

  test(`${file}: every variable's label_values query finds values`, { skip }, async () => {
    const vars = (build().templating as { list: Array<{ name: string, definition: string }> }).list
    for (const v of vars) {
      const m = /^label_values\((.+), (\w+)\)$/.exec(v.definition)
      assert.ok(m, `${v.name}: ${v.definition}`)
      const values: string[] = await promApi(`/api/v1/label/${m[2]}/values`, { 'match[]': expand(m[1]!) })
      assert.ok(values.length > 0, `${v.name} has values`)
      if (v.name === 'stage') for (const s of ['accept', 'tls', 'read', 'parse', 'decode', 'handler', 'serialize', 'write']) assert.ok(values.includes(s), `stage ${s}`)
    }
  })
}

test('the share panel\'s stages and gaps add up to the whole: its shares sum to 1, and hooks and error_handler are among them', { skip }, async () => {
  const share = queriesOf(requestJourneyDashboard()).filter(q => q.panel.startsWith('Where the time goes'))
  assert.equal(share.length, 2, 'stages, then gaps')
  const values = new Map<string, number>()
  // Both queries at one evaluation time: evaluated a few ms apart, their rate() windows differ, and the
  // shares summed to 1 ± 3e-9 (seen in CI), which is the windows, not the panel.
  const time = String(Date.now() / 1000)
  for (const q of share) {
    const data = await promApi('/api/v1/query', { query: expand(q.expr), time })
    for (const r of data.result as Array<{ metric: { stage: string }, value: [number, string] }>) values.set(r.metric.stage, Number(r.value[1]))
  }
  const total = [...values.values()].reduce((a, b) => a + b, 0)
  assert.ok(Math.abs(total - 1) < 1e-9, `shares ${JSON.stringify(Object.fromEntries(values))} sum to ${total}`)
  assert.ok((values.get('gap: hooks') ?? 0) > 0, 'the time between stages is a share of its own')
  assert.ok((values.get('gap: error_handler') ?? 0) > 0, 'and so is the error handling of the workload\'s bad bodies')
  assert.ok((values.get('gap: error_handler') ?? 0) > 0, 'and so is the error handling of the workload\'s bad bodies')
  assert.ok((values.get('handler') ?? 0) > 0)
})

test('exemplars are stored with trace ids, so a dot on a latency panel opens a trace', { skip }, async () => {
  const end = Date.now() / 1000
  const data: Array<{ exemplars: Array<{ labels: Record<string, string> }> }> = await promApi('/api/v1/query_exemplars', {
    query: 'journey_stage_duration_seconds_bucket', start: String(end - 600), end: String(end)
  })
  const ids = data.flatMap(s => s.exemplars.map(e => e.labels.traceId))
  assert.ok(ids.length > 0, 'exemplars present')
  for (const id of ids) assert.match(id!, /^[0-9a-f]{32}$/)
})

test('fast stages and requests are told apart: a hot GET\'s decode does not read as p50 5 µs, nor the request as 50 µs', { skip }, async () => {
  // With 10 µs as the first stage bucket, histogram_quantile put every fast stage at p50 5.00 µs and p99
  // 9.90 µs, whatever it really took (src/journey/stages.ts, STAGE_BUCKETS). The mixed workload above is
  // paced and its stages take microseconds; a hot keep-alive loop makes decode take a fraction of one.
  // rate() needs a sample before the loop: a series born in the window would read no increase at all. The
  // workload above sends GET / over plain HTTP too (every job meets both schemes).
  const before = await promApi('/api/v1/query', { query: 'http_server_request_duration_seconds_count{http_route="/",url_scheme="http"}' })
  assert.equal(before.result.length, 1, 'GET / over HTTP was scraped before the loop')
  const started = Date.now()
  const pool = new Pool(`http://127.0.0.1:${app.ports.http}`, { connections: 4 })
  try {
    for (let i = 0; i < 40; i++) {
      await Promise.all(Array.from({ length: 500 }, async () => { const r = await pool.request({ path: '/', method: 'GET' }); await r.body.text() }))
    }
  } finally {
    await pool.close()
  }
  await new Promise(resolve => setTimeout(resolve, 11_000)) // two scrapes (every 5 s) after it
  // The window reaches one scrape before the loop (≤ 5 s), and not the paced workload, which ended ≥ 11 s before it.
  const window = `${Math.ceil((Date.now() - started) / 1000) + 5}s`
  const p50 = async (stage: string): Promise<number> => {
    const data = await promApi('/api/v1/query', { query: `histogram_quantile(0.5, sum by (le) (rate(journey_stage_duration_seconds_bucket{stage="${stage}",route="/"}[${window}])))` })
    return Number((data.result as Array<{ value: [number, string] }>)[0]?.value[1])
  }
  const decode = await p50('decode')
  assert.ok(decode > 0 && decode < 2.5e-6, `decode p50 ${decode * 1e6} µs`)
  assert.ok(await p50('write') > decode, 'write, which hands the response to the kernel, reads longer than decode')
  // The request duration too: with 0.1 ms as its first bucket a ≈ 10 µs request read p50 50 µs. Against the
  // journey page's exact durations of the newest 200 requests (all from the loop), within a bucket's factor.
  const request = await promApi('/api/v1/query', { query: `histogram_quantile(0.5, sum by (le) (rate(http_server_request_duration_seconds_bucket{http_route="/"}[${window}])))` })
  const promMs = Number((request.result as Array<{ value: [number, string] }>)[0]?.value[1]) * 1000
  const snap = await (await fetch(`http://127.0.0.1:${app.ports.metrics}/journey/snapshot.json`)).json() as { recent: Array<{ route: string, durationMs: number }> }
  const exact = snap.recent.filter(r => r.route === '/').map(r => r.durationMs).sort((a, b) => a - b)
  const pageMs = exact[Math.floor(exact.length / 2)]!
  assert.ok(promMs / pageMs > 0.4 && promMs / pageMs < 2.5, `request p50: Prometheus ${promMs * 1000} µs, the page ${pageMs * 1000} µs`)
})
