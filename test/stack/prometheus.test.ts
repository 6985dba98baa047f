// Every dashboard query against a real Prometheus: the shipped config (only the target rewritten to this
// host) passes promtool, Prometheus scrapes the real server while a mixed workload runs, and then each PromQL
// expression of each panel must parse and return at least one series. A panel that would be empty fails here.
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { createServer as createHttpServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { parse, stringify } from 'yaml'
import { DASHBOARDS, queriesOf } from '../../grafana/dashboards.ts'
import { runWorkload } from '../../experiments/lib/workload.ts'
import { freePort } from '../../experiments/lib/server.ts'
import { killAll, start, type Started } from '../helpers/process.ts'
import { connect } from '../helpers/raw.ts'

const PROMETHEUS = '/usr/bin/prometheus'
const PROMTOOL = '/usr/bin/promtool'
const missing = [PROMETHEUS, PROMTOOL].filter(p => !existsSync(p))
const skip = missing.length > 0 && process.env.CI !== 'true'
  ? `no ${missing.join(', ')} here (apt-get install prometheus); CI installs it and runs this test`
  : false

let app: Started
let prometheus: ChildProcess | undefined
let promUrl = ''
let collector: Server
const dir = mkdtempSync(join(tmpdir(), 'journey-prometheus-'))

async function promApi (path: string, params: Record<string, string>): Promise<any> {
  const res = await fetch(`${promUrl}${path}?${new URLSearchParams(params)}`)
  const json = await res.json() as { status: string, error?: string, data: any }
  if (json.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${json.error}`)
  return json.data
}

/** Grafana's variables as an "All" selection would expand them, and $__rate_interval for a 5 s scrape. */
function expand (expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replace(/\$(instance|route|stage)\b/g, '.*')
}

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

  // The shipped config with only the app's target rewritten: DNS discovery of `app` becomes this host.
  const config = parse(readFileSync(new URL('../../deploy/prometheus/prometheus.yml', import.meta.url), 'utf8'))
  const job = config.scrape_configs.find((j: { job_name: string }) => j.job_name === 'request-journey')
  delete job.dns_sd_configs
  job.static_configs = [{ targets: [`127.0.0.1:${app.ports.metrics}`] }]
  config.scrape_configs = config.scrape_configs.filter((j: { job_name: string }) => j.job_name !== 'jaeger')
  const file = join(dir, 'prometheus.yml')
  writeFileSync(file, stringify(config))
  execFileSync(PROMTOOL, ['check', 'config', file], { stdio: 'pipe' })

  const port = await freePort()
  promUrl = `http://127.0.0.1:${port}`
  prometheus = spawn(PROMETHEUS, [
    `--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--enable-feature=exemplar-storage', '--log.level=warn'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  prometheus.stderr!.on('data', (d: Buffer) => { log += d.toString() })
  for (let i = 0; ; i++) {
    if (prometheus.exitCode !== null) throw new Error(`prometheus exited: ${log}`)
    if (await fetch(`${promUrl}/-/ready`).then(r => r.ok, () => false)) break
    if (i > 100) throw new Error(`prometheus not ready: ${log}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }

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
  prometheus?.kill('SIGTERM')
  if (app !== undefined) { app.child.kill('SIGTERM'); await app.exited }
  collector?.close()
  killAll()
  rmSync(dir, { recursive: true, force: true })
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

test('exemplars are stored with trace ids, so a dot on a latency panel opens a trace', { skip }, async () => {
  const end = Date.now() / 1000
  const data: Array<{ exemplars: Array<{ labels: Record<string, string> }> }> = await promApi('/api/v1/query_exemplars', {
    query: 'journey_stage_duration_seconds_bucket', start: String(end - 600), end: String(end)
  })
  const ids = data.flatMap(s => s.exemplars.map(e => e.labels.traceId))
  assert.ok(ids.length > 0, 'exemplars present')
  for (const id of ids) assert.match(id!, /^[0-9a-f]{32}$/)
})
