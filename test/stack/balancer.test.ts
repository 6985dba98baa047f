// The compose stack's balancer, deploy/haproxy/haproxy.cfg, run by a real HAProxy (Debian's 2.6; the stack
// pins 3.2) in front of the real server, its `app:` addresses rewritten to this host. It proves what the
// README says of TCP pass-through: TLS still ends in the app, so its journey sees every handshake; one
// client connection is one app connection; and the balancer's own health checks leave no trace in the
// journey's connection counts, errors or TLS failures (HAProxy's layer-4 check resets the connection
// before the app can accept it). And that a replica draining after SIGTERM (listener closed, in-flight
// requests finishing) costs no client a connection in the seconds before its health check notices.
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { freePorts } from '../../experiments/lib/server.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { killAll, start } from '../helpers/process.ts'
import { scrape, sum } from '../../experiments/lib/metrics.ts'

const HAPROXY = '/usr/sbin/haproxy'
const SHIPPED = new URL('../../deploy/haproxy/haproxy.cfg', import.meta.url)
// CI installs HAProxy: there a missing one is a failure. Elsewhere the test says why it skips.
const skip: string | false = !existsSync(HAPROXY) && process.env.CI !== 'true'
  ? 'no HAProxy here (apt-get install haproxy); CI installs it and runs this test'
  : false
if (skip !== false) console.log(`# skipping the balancer test: ${skip}`)

let t: TestServer
let balancer: { proc: ChildProcess, log: () => string } | undefined
let dir: string
const front = { http: 0, https: 0, admin: 0 }

/**
 * The shipped configuration with only addresses changed: the app's three ports, the frontends' ports, and
 * Docker's DNS (not here). `servers` replaces a backend's server template with servers of its own.
 */
function rewrite (app: { http: number, https: number, metrics: number }, fronts: typeof front, servers: Record<string, string> = {}): string {
  let config = readFileSync(SHIPPED, 'utf8')
  for (const [backend, lines] of Object.entries(servers)) {
    config = config.replace(new RegExp(`(backend ${backend}\n(?: {2}.*\n)*?) {2}server-template .*\n`), `$1${lines}`)
  }
  config = config
    .replace(/^resolvers docker\n(?: {2}.*\n)*/m, '')
    .replaceAll(' resolvers docker init-addr none', '')
    .replace('app:3000', `127.0.0.1:${app.http}`)
    .replace('app:3443', `127.0.0.1:${app.https}`)
    .replace('app:9464', `127.0.0.1:${app.metrics}`)
    .replace('bind :3000', `bind 127.0.0.1:${fronts.http}`)
    .replace('bind :3443', `bind 127.0.0.1:${fronts.https}`)
    .replace('bind :9464', `bind 127.0.0.1:${fronts.admin}`)
  assert.doesNotMatch(config, /\bapp:\d|bind :\d|resolvers/, 'every address rewritten')
  return config
}

/** Runs HAProxy on a configuration, with a stats socket (so a test can see the health checks ran) in `at`. */
async function startHaproxy (config: string, at: string, fronts: typeof front): Promise<{ proc: ChildProcess, log: () => string }> {
  writeFileSync(join(at, 'haproxy.cfg'), config.replace(/^global\n/m, `global\n  stats socket ${join(at, 'stats')} level user\n`))
  const proc = spawn(HAPROXY, ['-db', '-f', join(at, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  // Until the balancer answers through to an app.
  for (let i = 0; ; i++) {
    try {
      const r = await request(`http://127.0.0.1:${fronts.admin}/readyz`, { reset: true })
      await r.body.text()
      if (r.statusCode === 200) break
    } catch { /* not up yet */ }
    if (i > 100 || proc.exitCode !== null) throw new Error(`HAProxy did not pass requests through:\n${out}`)
    await sleep(100)
  }
  return { proc, log: () => out }
}

before(async () => {
  if (skip !== false) return
  t = await startTestServer()
  const [http, https, admin] = await freePorts(3)
  Object.assign(front, { http, https, admin })
  dir = mkdtempSync(join(tmpdir(), 'journey-haproxy-'))
  balancer = await startHaproxy(rewrite(t.server.ports, front), dir, front)
})

after(async () => {
  balancer?.proc.kill()
  if (t !== undefined) await t.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  killAll()
})

/** HAProxy's `show stat` over its stats socket, one object per proxy or server row. */
async function showStat (at = dir): Promise<Array<Record<string, string>>> {
  const csv = await new Promise<string>((resolve, reject) => {
    let out = ''
    const s = createConnection(join(at, 'stats'), () => s.write('show stat\n'))
    s.on('data', (d: Buffer) => { out += d.toString() })
    s.on('end', () => resolve(out))
    s.on('error', reject)
  })
  const [header, ...rows] = csv.trim().split('\n')
  const keys = header!.replace(/^# /, '').split(',')
  return rows.map(row => Object.fromEntries(row.split(',').map((v, i) => [keys[i]!, v])))
}

test('the shipped balancer configuration is valid as it is (haproxy -c)', { skip }, () => {
  const out = execFileSync(HAPROXY, ['-c', '-f', fileURLToPath(SHIPPED)], { encoding: 'utf8', stdio: 'pipe' })
  assert.match(out, /Configuration file is valid/)
})

test('through the balancer: the app sees each client connection and TLS handshake once, and none of the health checks', { skip }, async () => {
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => sum(await scrape(`${t.admin}/metrics`), name, labels)
  const accepted = { http: await metric('journey_connections_accepted_total', { listener: 'http' }), https: await metric('journey_connections_accepted_total', { listener: 'https' }) }
  const handshakes = await metric('journey_tls_handshake_duration_seconds_count', { listener: 'https' })

  // Five HTTPS clients, one connection each; one HTTP client keeping its connection for three requests.
  for (let i = 0; i < 5; i++) {
    const fresh = new Agent({ connect: { rejectUnauthorized: false } })
    const r = await request(`https://127.0.0.1:${front.https}/`, { dispatcher: fresh })
    assert.equal(r.statusCode, 200)
    await r.body.text()
    await fresh.close()
  }
  const kept = new Agent({ connections: 1 })
  for (let i = 0; i < 3; i++) {
    const r = await request(`http://127.0.0.1:${front.http}/`, { dispatcher: kept })
    assert.equal(r.statusCode, 200)
    await r.body.text()
  }
  await kept.close()
  // Two rounds of the balancer's health checks (every 2 s) on all 30 servers of the three backends.
  await sleep(4500)
  const checked = (await showStat()).filter(r => r.pxname?.startsWith('app_') === true && r.svname?.startsWith('app') === true)
  assert.equal(checked.length, 30)
  // HAProxy prefixes the last known status with "* " while a check is running (its management guide, CSV
  // field check_status): the status is still the last check's.
  for (const r of checked) assert.equal(r.check_status?.replace(/^\* /, ''), 'L4OK', `${r.pxname}/${r.svname} was health-checked, and passed`)

  assert.equal(await metric('journey_tls_handshake_duration_seconds_count', { listener: 'https' }) - handshakes, 5, 'TLS ends in the app: every handshake measured there')
  assert.equal(await metric('journey_connections_accepted_total', { listener: 'https' }) - accepted.https, 5, 'one app connection per client connection')
  assert.equal(await metric('journey_connections_accepted_total', { listener: 'http' }) - accepted.http, 1, 'keep-alive passes through: one connection for three requests')
  assert.equal(await metric('journey_connection_errors_total'), 0, 'no connection errors from health checks')
  assert.equal(await metric('journey_tls_handshake_failures_total'), 0, 'no failed handshakes from health checks')
  assert.doesNotMatch(balancer!.log(), /is DOWN/, `every server stayed up:\n${balancer!.log()}`)
})

test('a replica that stops accepting (draining after SIGTERM) costs no client a connection: the balancer retries another', { skip }, async () => {
  // Two replicas behind HTTP: a second app process, and the test's app. The second drains: a slow request
  // keeps it alive while its listener is already closed, as after SIGTERM in `docker compose stop`.
  const draining = await start()
  const [http = 0, https = 0, admin = 0] = await freePorts(3)
  const fronts = { http, https, admin }
  const at = mkdtempSync(join(tmpdir(), 'journey-haproxy-drain-'))
  const config = rewrite(t.server.ports, fronts, {
    app_http: `  server draining 127.0.0.1:${draining.ports.http} check\n  server serving 127.0.0.1:${t.server.ports.http} check\n`
  })
  const second = await startHaproxy(config, at, fronts)
  try {
    const inflight = request(`http://127.0.0.1:${draining.ports.http}/io?ms=3000`).then(async r => { await r.body.text(); return r.statusCode })
    await sleep(200)
    draining.child.kill('SIGTERM')
    // Until its listener is closed (its readiness says so too).
    for (let i = 0; ; i++) {
      const refused = await new Promise<boolean>(resolve => {
        const c = createConnection(draining.ports.http, '127.0.0.1')
        c.on('connect', () => { c.destroy(); resolve(false) })
        c.on('error', () => resolve(true))
      })
      if (refused) break
      assert.ok(i < 100, 'the draining app closed its listener')
      await sleep(20)
    }
    // Fresh client connections right away, before any health check has seen the replica go: round robin
    // sends every other one to the draining replica, whose refusal the balancer must not pass on.
    const answers: Array<number | string> = []
    for (let i = 0; i < 20; i++) {
      const fresh = new Agent({ connections: 1 })
      try {
        const r = await request(`http://127.0.0.1:${fronts.http}/`, { dispatcher: fresh })
        await r.body.text()
        answers.push(r.statusCode)
      } catch (err) {
        answers.push((err as Error & { code?: string }).code ?? String(err))
      } finally {
        await fresh.close()
      }
    }
    assert.deepEqual(answers, new Array(20).fill(200), `every client connection was served:\n${second.log()}`)
    const rows = await showStat(at)
    const retried = rows.find(r => r.pxname === 'app_http' && r.svname === 'draining')
    assert.ok(Number(retried?.wretr ?? 0) + Number(retried?.wredis ?? 0) > 0, 'the balancer did meet the refusal (and retried)')
    assert.equal(await inflight, 200, 'the draining app finished its in-flight request')
    assert.equal((await draining.exited).code, 0)
  } finally {
    second.proc.kill()
    draining.child.kill('SIGKILL')
    rmSync(at, { recursive: true, force: true })
  }
})
