// Every dashboard query against a real Prometheus: the shipped config (only the target rewritten to this
// host) passes promtool, Prometheus scrapes the real server while a mixed workload runs, and then each PromQL
// expression of each panel must parse and return at least one series. A panel that would be empty fails here.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { createServer as createHttpServer, type Server } from 'node:http'
import { Pool } from 'undici'
import { after, before, test } from 'node:test'
import type { Snapshot } from '../../src/journey/consume-recent.ts'
import { DASHBOARDS, queriesOf, requestJourneyDashboard } from '../../grafana/dashboards.ts'
import { runWorkload } from '../../experiments/lib/workload.ts'
import { killAll, start, type Started } from '../helpers/process.ts'
import { connect } from '../helpers/raw.ts'
import { alertRules, expand, skipWithoutPrometheus as skip, startPrometheus, type Prometheus } from '../helpers/prometheus.ts'

const run = promisify(execFile)
// Enough for over 1 % of the HTTPS handshakes the workload makes (a few hundred).
const REJECTIONS = 30
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
    // Metrics pushed to it too, besides the scrape, so the push alert's series exist (and it stays quiet).
    OTEL_METRICS_EXPORTER: 'prometheus,otlp',
    OTEL_METRIC_EXPORT_INTERVAL: '2000',
    JOURNEY_KERNEL_SAMPLE_MS: '100', // as in docker-compose.yml
    LOG_LEVEL: 'info',
    MAX_CONNECTIONS: '40' // for the panel's dropped connections, below; the workload holds far fewer
  })
  prometheus = await startPrometheus(`127.0.0.1:${app.ports.metrics}`)
  // Traffic only after Prometheus's first scrape: an event before it would be in the first sample, where no
  // increase() can see it (the counters' zeros, below, are about events after that).
  let scraped = false
  for (let i = 0; i < 150 && !scraped; i++) {
    scraped = (await promApi('/api/v1/query', { query: 'up{job="request-journey"}' })).result.length > 0
    if (!scraped) await new Promise(resolve => setTimeout(resolve, 100))
  }
  assert.ok(scraped, 'Prometheus scraped the app within 15 s')

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
    // curl, not trusting the development certificate, rejects it with an alert: JourneyTlsCertificateRejected.
    for (let i = 0; i < REJECTIONS; i++) await run('curl', ['-s', '-o', '/dev/null', https]).catch(() => {})
  }
  // Two requests cut off: a download after its 200 went out, and a slow request before any status did.
  // Twice, 8 s apart: a series' first sample is no increase rate() can see.
  const cut = async (): Promise<void> => {
    const download = await connect(app.ports.http)
    await download.write('GET /download?kb=102400 HTTP/1.1\r\nHost: x\r\n\r\n')
    assert.match(await download.read(t => t.includes('\r\n\r\n')), /^HTTP\/1\.1 200/)
    download.socket.destroy()
    const slow = await connect(app.ports.http)
    await slow.write('GET /io?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise(resolve => setTimeout(resolve, 200))
    slow.socket.destroy()
  }
  const cutTwice = async (): Promise<void> => { await cut(); await new Promise(resolve => setTimeout(resolve, 8000)); await cut() }
  await Promise.all([runWorkload({ httpUrl: http, httpsUrl: https, seconds: 16, concurrency: 3, pauseMs: 10 }), bad(), cutTwice()])
  // Past MAX_CONNECTIONS: 50 connections at once, so Node drops at least the last ten as it accepts them
  // (more if the workload's keep-alive connections are still open).
  const burst = Array.from({ length: 50 }, () => netConnect(app.ports.http, '127.0.0.1').on('error', () => {}))
  for (let i = 0; i < 100 && burst.filter(c => c.closed).length < 10; i++) await new Promise(resolve => setTimeout(resolve, 20))
  assert.ok(burst.filter(c => c.closed).length >= 10, 'connections dropped')
  for (const c of burst) c.destroy()
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

test('the shipped alerting rules load, each evaluates without error, and every metric they read is one the app exports', { skip }, async () => {
  type Rule = { name: string, query: string, health: string, lastError?: string }
  let rules: Rule[] = []
  // A rule's health is 'unknown' until its first evaluation (every 5 s).
  for (let i = 0; i < 60; i++) {
    const data: { groups: Array<{ rules: Rule[] }> } = await promApi('/api/v1/rules', {})
    rules = data.groups.flatMap(g => g.rules)
    if (rules.length > 0 && rules.every(r => r.health !== 'unknown')) break
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  assert.deepEqual(rules.map(r => r.name).sort(), alertRules().map(r => r.alert).sort(), 'every alert of alerts.yml is loaded')
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError ?? ''}`)
  // A misspelt metric would make an alert that can never fire, and evaluate healthily: each name it reads
  // must have series from the real app.
  const names = new Set(rules.flatMap(r => r.query.match(/\b(?:up|(?:journey|http_server|nodejs)_[a-z0-9_]+)\b/g) ?? []))
  assert.ok(names.size >= 8, `metric names found in the rules: ${[...names].join(', ')}`)
  for (const name of names) {
    const data = await promApi('/api/v1/query', { query: `count({__name__="${name}", job="request-journey"})` })
    assert.equal(data.result.length, 1, `${name}: read by an alert, exported by the app`)
  }
})

type Alert = { labels: Record<string, string>, state: string, value: string }

/** Prometheus's active alerts once `name` fires (15 s at most: rules are evaluated every 5 s), and that one; fails if it never does. */
async function untilFiring (name: string): Promise<{ alerts: Alert[], firing: Alert }> {
  let alerts: Alert[] = []
  const firingNow = (a: Alert): boolean => a.labels.alertname === name && a.state === 'firing'
  for (let i = 0; i < 60 && !alerts.some(firingNow); i++) {
    alerts = ((await promApi('/api/v1/alerts', {})) as { alerts: Alert[] }).alerts
    if (!alerts.some(firingNow)) await new Promise(resolve => setTimeout(resolve, 250))
  }
  const firing = alerts.find(firingNow)
  assert.ok(firing, `${name} firing (alerts: ${JSON.stringify(alerts.map(a => [a.labels.alertname, a.state]))})`)
  return { alerts, firing }
}

test('an alert fires on a real overload: the burst past maxConnections fires JourneyConnectionsDropped; the collector took every span and metric push, so no telemetry alert fires', { skip }, async () => {
  const { alerts, firing } = await untilFiring('JourneyConnectionsDropped')
  assert.equal(firing.labels.listener, 'http')
  assert.equal(firing.labels.severity, 'warning')
  const names = alerts.map(a => a.labels.alertname)
  for (const quiet of ['JourneyTargetDown', 'JourneySpansDropped', 'JourneySpanExportDown', 'JourneyMetricPushDown']) assert.ok(!names.includes(quiet), `${quiet} is not active`)
  // Quiet because the pushes got through, not because there were none.
  const pushes = await promApi('/api/v1/query', { query: 'sum by (result) (journey_metric_pushes_total{job="request-journey"})' })
  const byResult = Object.fromEntries((pushes.result as Array<{ metric: { result: string }, value: [number, string] }>).map(r => [r.metric.result, Number(r.value[1])]))
  assert.ok(byResult.success! >= 3, `pushes that succeeded, as Prometheus scraped them: ${JSON.stringify(byResult)}`)
  assert.equal(byResult.failure, 0, 'and none failed (the series exists, from 0)')
})

test('clients rejecting the certificate fire JourneyTlsCertificateRejected, counted from 0 under their reason', { skip }, async (t) => {
  const { firing } = await untilFiring('JourneyTlsCertificateRejected')
  assert.equal(firing.labels.listener, 'https')
  t.diagnostic(`rejected in ${Number(firing.value) * 100} % of the handshakes`)
  const increase = await promApi('/api/v1/query', { query: 'sum(increase(journey_tls_handshake_failures_total{reason="tlsv1_alert_unknown_ca"}[10m]))' })
  // increase() extrapolates to the window's edges a little; a series born at 1 would lose one.
  assert.ok(Number(increase.result[0]?.value[1]) >= REJECTIONS, `every rejection seen: ${JSON.stringify(increase.result)}`)
})

test('one malformed request and one plain-HTTP client of HTTPS are increases Prometheus sees: their counters were exported at 0 before', { skip }, async () => {
  // before() sent exactly one of each. A counter born at its first event would read an increase of 0 here.
  for (const [query, what] of [
    ['sum(increase(journey_connection_errors_total{reason="bad_request"}[5m]))', 'the malformed request'],
    ['sum(increase(journey_tls_handshake_failures_total{reason="plain_http"}[5m]))', 'the plain-HTTP client']
  ] as const) {
    const data = await promApi('/api/v1/query', { query })
    const value = Number((data.result as Array<{ value: [number, string] }>)[0]?.value[1])
    assert.ok(value > 0, `${what}: increase ${value}`)
  }
})

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

test('the status-class panels count a request cut off as aborted, once, whatever status it had sent', { skip }, async () => {
  const panel = (title: string): string => queriesOf(requestJourneyDashboard()).find(q => q.panel === title)!.expr
  const time = String(Date.now() / 1000)
  const byClass = async (expr: string): Promise<Map<string, number>> => {
    const data = await promApi('/api/v1/query', { query: expand(expr), time })
    return new Map((data.result as Array<{ metric: { status_class?: string }, value: [number, string] }>).map(r => [r.metric.status_class ?? '', Number(r.value[1])]))
  }
  const all = await byClass(panel('Requests per second by status class'))
  const errors = await byClass(panel('Errors per second by status class'))
  // The metric itself: one series cut off after its 200, one cut off with no status at all.
  const cut = await promApi('/api/v1/query', { query: 'http_server_request_duration_seconds_count{error_type="aborted"}', time })
  const labels = (cut.result as Array<{ metric: Record<string, string> }>).map(r => `${r.metric.http_route} ${r.metric.http_response_status_code ?? 'none'}`).sort()
  for (const l of ['/download 200', '/io none']) assert.ok(labels.includes(l), `${l} among ${labels.join(', ')}`)
  assert.ok((all.get('aborted') ?? 0) > 0, `aborted requests on the panel: ${JSON.stringify([...all])}`)
  assert.equal(errors.get('aborted'), all.get('aborted'), 'the same on both panels')
  assert.equal(errors.get('2xx'), undefined, 'a download cut off after its 200 is an error, not a success')
  assert.ok((errors.get('4xx') ?? 0) > 0, 'the workload\'s bad bodies')
  // Nothing counted twice, nothing left out: the classes add up to every request.
  const total = await promApi('/api/v1/query', { query: 'sum(rate(http_server_request_duration_seconds_count{job="request-journey"}[1m]))', time })
  const sum = [...all.values()].reduce((a, b) => a + b, 0)
  assert.ok(Math.abs(sum - Number(total.result[0].value[1])) < 1e-9, `classes ${sum} against all ${total.result[0].value[1]}`)
  assert.equal(all.get(''), undefined, 'every request has a class')
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

test('fast stages are told apart: Prometheus reads each stage\'s and the request\'s median within 2× (the request within its bucket) of the exact one, for the same requests', { skip }, async (ctx) => {
  // With 10 µs as the first stage bucket, histogram_quantile put every fast stage at p50 5.00 µs and p99
  // 9.90 µs, whatever it really took (src/journey/stages.ts, STAGE_BUCKETS); with 0.1 ms as the first
  // request bucket, a ≈ 10 µs request read p50 50 µs. Prometheus's medians are checked here against the
  // journey page's exact durations of the very same requests: a hot keep-alive loop warms the server, a
  // scrape after it, then N requests (fewer than the page's ring of 200 holds), and a scrape that holds all
  // N. Prometheus's quantile is of the difference between those two scrapes, so nothing else is in it. (An
  // earlier version compared a 20,000-request loop's rate() with the page's newest 200: different requests,
  // and in CI 3× apart while both were right.) Requests take 40 to 120 µs in this loop on a 2.3 GHz Xeon,
  // where the old request buckets read 1.74× over (within a bucket): it is the stages' check that fails
  // on the old buckets here.
  const http = `http://127.0.0.1:${app.ports.http}`
  const series = 'http_server_request_duration_seconds_count{http_route="/",url_scheme="http"}'
  /** The newest scrape of GET / over HTTP: its time (s) and count, once it satisfies `ok`. */
  const scrape = async (ok: (s: { at: number, count: number }) => boolean): Promise<{ at: number, count: number }> => {
    const value = async (query: string): Promise<number> => {
      const data = await promApi('/api/v1/query', { query })
      return Number((data.result as Array<{ value: [number, string] }>)[0]?.value[1])
    }
    for (const end = Date.now() + 30_000; Date.now() < end; await new Promise(resolve => setTimeout(resolve, 250))) {
      // One after the other, the scrape's time asked again after its count: a scrape that lands between two
      // queries would pair one scrape's count with another's time (a CI run read the same time for the
      // scrapes before and after the N requests: an offset of 0 ms, which Prometheus refuses).
      const at = await value(`max(timestamp(${series}))`)
      const count = await value(`sum(${series})`)
      if (await value(`max(timestamp(${series}))`) !== at) continue
      const s = { at, count }
      if (ok(s)) return s
    }
    throw new Error('no scrape came within 30 s')
  }
  // Up to three loops: the check below needs a stage under 2.5 µs, and a host that slows the VM for a while
  // (a CI run read serialize at 2.61 µs and the request at 258 µs, against 0.7–1.7 and 40–120) leaves none.
  // The medians are checked in every loop; only a loop too slow to contain the hard case is run again.
  const N = 150
  const median = (ms: number[]): number => { const v = ms.sort((a, b) => a - b); return (v[N / 2 - 1]! + v[N / 2]!) / 2 / 1000 }
  const µs = (s: number): string => `${(s * 1e6).toFixed(2)} µs`
  for (let attempt = 1; ; attempt++) {
    // Four keep-alive connections kept busy: the server is hot, and decode takes 1.2 to 3 µs, serialize under
    // 2 (one request at a time, with the loop idle between them, the same decode took 2.5 to 5 µs here).
    const pool = new Pool(http, { connections: 4 })
    const batch = (n: number): Promise<unknown> => Promise.all(Array.from({ length: n }, async () => { const r = await pool.request({ path: '/', method: 'GET' }); await r.body.text() }))
    let first: { at: number, count: number }
    try {
      for (let i = 0; i < 40; i++) await batch(500)
      // A scrape begun after the warm-up's last response was written has all of it.
      const warmed = Date.now() / 1000 + 0.1
      first = await scrape(s => s.at > warmed)
      await batch(N)
    } finally {
      await pool.close()
    }
    const last = await scrape(s => s.count >= first.count + N)
    assert.equal(last.count, first.count + N, 'the scrape after holds the N requests and no others')
    const offset = `${Math.round((last.at - first.at) * 1000)}ms`
    const p50 = async (metric: string, selector: string): Promise<number> => {
      const series = `${metric}{${selector}}`
      const data = await promApi('/api/v1/query', { query: `histogram_quantile(0.5, sum by (le) (${series} - ${series} offset ${offset}))`, time: String(last.at) })
      return Number((data.result as Array<{ value: [number, string] }>)[0]?.value[1])
    }
    // The page's exact durations of the same N requests (the newest GET / over HTTP; its ring holds 200).
    const snap = await (await fetch(`http://127.0.0.1:${app.ports.metrics}/journey/snapshot.json`)).json() as Snapshot
    const loop = snap.recent.filter(r => r.route === '/' && r.scheme === 'http').sort((a, b) => a.id - b.id).slice(-N)
    assert.equal(loop.length, N, 'the page holds every request of the loop')
    // Every stage each of the N requests went through (accept only the few that opened a connection), and
    // the request itself. Prometheus interpolates within the bucket that holds the true median (bounds step
    // by 2 to 2.5), spreading the bucket's requests evenly over it: stages read within 1.4× in every run here,
    // so within 2× is asked of them. The request, which takes 100 to 200 µs with the other core busy, within
    // its bucket's factor: 1.44× was read with a CPU hog beside the test.
    const everyRequests = loop[0]!.stages.map(s => s.stage).filter(stage => loop.every(r => r.stages.some(s => s.stage === stage)))
    const rows = [
      ...everyRequests.map(stage => ({
        name: stage,
        exact: median(loop.map(r => r.stages.find(s => s.stage === stage)!.durationMs)),
        metric: 'journey_stage_duration_seconds_bucket',
        selector: `stage="${stage}",route="/"`
      })),
      { name: 'request', exact: median(loop.map(r => r.durationMs)), metric: 'http_server_request_duration_seconds_bucket', selector: 'http_route="/",url_scheme="http"' }
    ]
    const read = await Promise.all(rows.map(async row => ({ ...row, prometheus: await p50(row.metric, row.selector) })))
    ctx.diagnostic(`p50 of the same ${N} requests, Prometheus / exact: ${read.map(r => `${r.name} ${µs(r.prometheus)} / ${µs(r.exact)}`).join(', ')}`)
    for (const r of read) {
      const factor = r.name === 'request' ? 2.5 : 2
      assert.ok(r.prometheus / r.exact > 1 / factor && r.prometheus / r.exact < factor, `${r.name} p50: Prometheus ${µs(r.prometheus)}, exact ${µs(r.exact)}`)
    }
    // The case the old buckets got wrong must be in the loop: a stage under 2.5 µs, which a first bucket of
    // 10 µs reads as 5 µs, 2× over or more. (The fastest, serialize, took 0.7 to 1.7 µs in 16 runs here.)
    const fastest = read.reduce((a, b) => b.exact < a.exact ? b : a)
    if (fastest.exact >= 2.5e-6 && attempt < 3) {
      ctx.diagnostic(`attempt ${attempt}: the fastest stage (${fastest.name}) took ${µs(fastest.exact)}, too slow to tell the buckets apart; again`)
      continue
    }
    assert.ok(fastest.exact < 2.5e-6, `the fastest stage (${fastest.name}) takes ${µs(fastest.exact)}: the loop is not hot enough to tell the buckets apart`)
    break
  }
})
