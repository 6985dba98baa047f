// The plugin observes the Fastify app's own servers: `Fastify()` (or `Fastify({ https })`) plus
// `app.register(journey.plugin)` measures every stage, on each address Fastify binds, with Fastify's own
// server options in force; a server observed already is never observed twice; HTTP/2 servers too.
import assert from 'node:assert/strict'
import dns from 'node:dns'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as connectHttp2 } from 'node:http2'
import { after, test } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Registry } from 'prom-client'
import { Agent, request } from 'undici'
import { createJourney, METRIC } from '../../src/journey/index.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { h2 } from '../helpers/h2.ts'
import { journeyWarnings } from '../helpers/warnings.ts'

const warnings = journeyWarnings()
const closing: Array<() => Promise<unknown>> = []
after(async () => { for (const close of closing) await close() })

async function journeyApp (opts: FastifyServerOptions & { http2?: boolean } = {}): Promise<{ app: FastifyInstance, registry: Registry, journey: ReturnType<typeof createJourney> }> {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify(opts as FastifyServerOptions)
  closing.push(async () => { await app.close(); journey.close() })
  await app.register(journey.plugin)
  app.get('/', async () => ({ hello: 'journey' }))
  return { app, registry, journey }
}

const portOf = (app: FastifyInstance): number => (app.server.address() as { port: number }).port

async function get (url: string, dispatcher?: Agent): Promise<number> {
  const r = await request(url, dispatcher === undefined ? {} : { dispatcher })
  await r.body.text()
  return r.statusCode
}

/** Sums of a few series, by the labels that say what the journey saw. */
async function seen (registry: Registry, listener: string): Promise<{ connections: number, reads: number, handlers: number, requests: number, tls: number }> {
  const m = parseMetrics(await registry.metrics())
  return {
    connections: sum(m, 'journey_connections_accepted_total', { listener }),
    reads: sum(m, 'journey_stage_duration_seconds_count', { stage: 'read' }),
    handlers: sum(m, 'journey_stage_duration_seconds_count', { stage: 'handler' }),
    requests: sum(m, 'http_server_request_duration_seconds_count', { http_route: '/' }),
    tls: sum(m, 'journey_tls_handshake_duration_seconds_count', { listener })
  }
}

test('Fastify() and the plugin alone: every stage of every request, one connection record per connection', async () => {
  warnings.length = 0
  const { app, registry } = await journeyApp({ requestTimeout: 4000 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(app.server.requestTimeout, 4000, 'Fastify applied its own server options')
  const agent = new Agent({ connections: 1 })
  closing.push(() => agent.close())
  for (let i = 0; i < 3; i++) assert.equal(await get(`http://127.0.0.1:${portOf(app)}/`, agent), 200)
  const s = await seen(registry, 'http')
  assert.equal(s.requests, 3)
  assert.equal(s.reads, 3, 'read and parse come from the observed parser')
  assert.equal(s.handlers, 3)
  assert.equal(s.connections, 1, 'one kept-alive connection, counted once')
  assert.deepEqual(warnings, [])
})

test('Fastify({ https }): the TLS handshake and every stage, listener https', async () => {
  warnings.length = 0
  const tls = await loadTlsMaterial(undefined, undefined)
  const { app, registry } = await journeyApp({ https: { key: tls.key, cert: tls.cert } } as FastifyServerOptions)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = new Agent({ connections: 1, connect: { rejectUnauthorized: false } })
  closing.push(() => agent.close())
  for (let i = 0; i < 2; i++) assert.equal(await get(`https://127.0.0.1:${portOf(app)}/`, agent), 200)
  const s = await seen(registry, 'https')
  assert.equal(s.tls, 1)
  assert.equal(s.connections, 1)
  assert.equal(s.reads, 2)
  assert.equal(s.requests, 2)
  assert.deepEqual(warnings, [])
})

test('listening on localhost (Fastify\'s default host): requests to each address it binds are measured', async (t) => {
  warnings.length = 0
  // Most machines' /etc/hosts give localhost both loopback addresses, and Fastify then builds a second
  // server in listen(). This one's names only 127.0.0.1, so the resolver's answer for localhost is what
  // such a machine answers (Fastify asks dns.lookup at listen time); the servers and sockets are real.
  const lookup = dns.lookup
  const both = [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]
  ;(dns as { lookup: unknown }).lookup = (host: string, opts: unknown, cb: (err: null, a: typeof both) => void) =>
    host === 'localhost' && typeof cb === 'function' && (opts as { all?: boolean }).all === true ? process.nextTick(cb, null, both) : (lookup as (...a: unknown[]) => void)(host, opts, cb)
  t.after(() => { dns.lookup = lookup })
  const { app, registry } = await journeyApp()
  await app.listen({ port: 0 })
  const addresses = app.addresses().map(a => typeof a === 'string' ? a : a.address)
  if (!addresses.includes('::1') || !addresses.includes('127.0.0.1')) {
    t.skip(`Fastify bound ${addresses.join(', ')} only (no IPv6 loopback here?): no second server to observe`)
    return
  }
  assert.equal(await get(`http://127.0.0.1:${portOf(app)}/`), 200)
  assert.equal(await get(`http://[::1]:${portOf(app)}/`), 200)
  const s = await seen(registry, 'http')
  assert.equal(s.requests, 2)
  assert.equal(s.reads, 2, 'the second address\'s server (Fastify builds it in listen()) is observed too')
  assert.equal(s.connections, 2)
  assert.deepEqual(warnings, [])
})

test('a server observed already keeps its observer and its name: no connection is counted twice', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const factoryApp = Fastify({ serverFactory: journey.serverFactory({ listener: 'public' }) })
  closing.push(() => factoryApp.close())
  await factoryApp.register(journey.plugin)
  factoryApp.get('/', async () => 'factory')
  await factoryApp.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(await get(`http://127.0.0.1:${portOf(factoryApp)}/`, new Agent({ pipelining: 0 })), 200)

  // Named by the app between registering the plugin and ready: the app's name wins.
  const registry2 = new Registry()
  const journey2 = createJourney({ registry: registry2 })
  const named = Fastify()
  closing.push(async () => { await named.close(); journey.close(); journey2.close() })
  await named.register(journey2.plugin)
  named.get('/', async () => 'named')
  journey2.observeServer(named.server, 'admin')
  journey2.observeServer(named.server, 'again') // a second call changes nothing
  await named.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(await get(`http://127.0.0.1:${portOf(named)}/`), 200)

  const a = parseMetrics(await registry.metrics())
  assert.equal(sum(a, 'journey_connections_accepted_total', { listener: 'public' }), 1)
  assert.equal(sum(a, 'journey_connections_accepted_total', {}), 1, 'one connection, one record')
  assert.equal(sum(a, 'http_server_request_duration_seconds_count', {}), 1)
  const b = parseMetrics(await registry2.metrics())
  assert.equal(sum(b, 'journey_connections_accepted_total', { listener: 'admin' }), 1)
  assert.equal(sum(b, 'journey_connections_accepted_total', {}), 1)
  assert.equal(sum(b, 'journey_stage_duration_seconds_count', { stage: 'read' }), 1, 'one parser observer')
})

test('Fastify({ http2: true }): its server is observed too, as listener http (test/journey/http2.test.ts: what is measured)', async () => {
  warnings.length = 0
  const { app, registry } = await journeyApp({ http2: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connectHttp2(`http://127.0.0.1:${portOf(app)}`)
  closing.push(async () => { session.close() })
  for (let i = 0; i < 2; i++) assert.equal(await h2(session, '/'), 200)
  await new Promise(resolve => setTimeout(resolve, 20))
  assert.deepEqual(warnings, [])
  const s = await seen(registry, 'http')
  assert.equal(s.requests, 2)
  assert.equal(s.connections, 1)
  assert.equal(s.handlers, 2)
})

test('fine mode on the app\'s own https server: measured, and said once that decryption stays in read', async () => {
  warnings.length = 0
  const tls = await loadTlsMaterial(undefined, undefined)
  const registry = new Registry()
  const journey = createJourney({ registry, precision: 'fine' })
  const app = Fastify({ https: { key: tls.key, cert: tls.cert } } as FastifyServerOptions)
  closing.push(async () => { await app.close(); journey.close() })
  await app.register(journey.plugin)
  app.get('/', async () => 'fine')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const agent = new Agent({ connections: 1, connect: { rejectUnauthorized: false } })
  closing.push(() => agent.close())
  assert.equal(await get(`https://127.0.0.1:${portOf(app)}/`, agent), 200)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage: 'read' }), 1)
  assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage: 'decrypt' }), 0, 'no cipher tap: no decrypt stage')
  assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_FINE_TLS'])
})

test('serverFactory() follows the https Fastify was given, and refuses http2 rather than serve the wrong protocol', async () => {
  // Fastify hands its own options to a serverFactory and trusts the server it gets back.
  const registry = new Registry()
  const journey = createJourney({ registry })
  const { key, cert } = await loadTlsMaterial(undefined, undefined)
  const app = Fastify({ https: { key, cert }, serverFactory: journey.serverFactory() } as FastifyServerOptions)
  closing.push(async () => { await app.close(); journey.close() })
  await app.register(journey.plugin)
  app.get('/', async () => ({ hello: 'journey' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const insecure = new Agent({ connect: { rejectUnauthorized: false } })
  closing.push(() => insecure.close())
  assert.equal(await get(`https://127.0.0.1:${portOf(app)}/`, insecure), 200)
  const s = await seen(registry, 'https')
  assert.equal(s.connections, 1, 'an HTTPS server, named https')
  assert.equal(s.tls, 1)

  assert.throws(() => Fastify({ http2: true, serverFactory: journey.serverFactory() } as FastifyServerOptions), /http2/)
})

test('listening on a Unix socket (behind a local proxy): every stage measured, the TCP-only figures absent rather than made up', async () => {
  warnings.length = 0
  const { app, registry } = await journeyApp()
  app.post('/echo', async (req) => req.body)
  const dir = mkdtempSync(join(tmpdir(), 'journey-unix-'))
  closing.push(async () => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'app.sock')
  await app.listen({ path })
  const unix = new Agent({ connect: { socketPath: path }, connections: 1 })
  closing.push(() => unix.close())
  assert.equal(await get('http://localhost/', unix), 200)
  const r = await request('http://localhost/echo', { dispatcher: unix, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
  assert.equal(await r.body.text(), '{"a":1}')
  const m = parseMetrics(await registry.metrics())
  for (const stage of ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write']) {
    assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage }), stage === 'accept' ? 1 : 2, stage)
  }
  assert.equal(sum(m, 'journey_connections_accepted_total', { listener: 'http' }), 1)
  assert.equal(sum(m, 'http_server_request_body_size_bytes_sum', { http_route: '/echo' }), 7)
  // No TCP underneath: no kernel wait from TCP_INFO, no accept-queue row in /proc/net/tcp.
  // (Names from METRIC, so a renamed metric cannot make these pass by reading nothing.)
  assert.equal(sum(m, `${METRIC.acceptKernelWait}_count`, {}), 0)
  assert.deepEqual([...m.keys()].filter(key => key.startsWith(METRIC.acceptQueueLength)), [])
  assert.deepEqual(warnings, [])
})
