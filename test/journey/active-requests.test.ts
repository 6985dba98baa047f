// http_server_active_requests: the requests in flight at the moment of a scrape, by method and scheme,
// counted from the open connections' records (no per-request bookkeeping), and back to 0 when they end;
// the journey page's "requests in flight" is the same count, and journey_connections_active that set's size.
import assert from 'node:assert/strict'
import { connect as h2connect, constants } from 'node:http2'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'
import { fragments } from '../../src/journey/page.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { parseMetrics, sample } from '../../experiments/lib/metrics.ts'
import { connect } from '../helpers/raw.ts'

const registry = new Registry()
let journey: ReturnType<typeof createJourney>
const apps: Array<Pick<FastifyInstance, 'close'>> = []
const ports = { http: 0, https: 0, h2: 0 }
// Each held request waits here until the test lets it go.
const held: Array<() => void> = []
const hold = async (): Promise<{ ok: boolean }> => { await new Promise<void>(resolve => held.push(resolve)); return { ok: true } }
const releaseAll = (): void => { for (const r of held.splice(0)) r() }

before(async () => {
  journey = createJourney({ registry })
  void journey.recent // the page's view collects from its first use: before any connection, as registerPage does
  const tls = await loadTlsMaterial(undefined, undefined)
  for (const [name, https] of [['http', undefined], ['https', { key: tls.key, cert: tls.cert }]] as const) {
    const app = Fastify({ serverFactory: journey.serverFactory({ listener: name, https }) })
    await app.register(journey.plugin)
    app.get('/hold', hold)
    app.post('/hold', hold)
    await app.listen({ port: 0, host: '127.0.0.1' })
    ports[name] = (app.server.address() as { port: number }).port
    apps.push(app)
  }
  const h2 = Fastify({ http2: true })
  await h2.register(journey.plugin)
  h2.get('/hold', hold)
  await h2.listen({ port: 0, host: '127.0.0.1' })
  ports.h2 = (h2.server.address() as { port: number }).port
  apps.push(h2)
})
after(async () => { releaseAll(); for (const app of apps) await app.close() })

const openConnections = async (listener: string): Promise<number> =>
  sample(parseMetrics(await registry.metrics()), 'journey_connections_active', { listener })
const active = async (method: string, scheme: string): Promise<number> =>
  sample(parseMetrics(await registry.metrics()), 'http_server_active_requests', { http_request_method: method, url_scheme: scheme })

async function until (what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) { if (await check()) return; await sleep(10) }
  assert.fail(`timed out waiting: ${what}`)
}

test('requests in flight are counted by method and scheme while they run, and read 0 once they finished', async () => {
  const a = await connect(ports.http)
  const b = await connect(ports.http)
  const c = await connect(ports.https, true)
  await a.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n')
  await b.write('POST /hold HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
  await c.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n')
  await until('three handlers holding', async () => held.length === 3)
  assert.equal(await active('GET', 'http'), 1)
  assert.equal(await active('POST', 'http'), 1)
  assert.equal(await active('GET', 'https'), 1)
  assert.equal(journey.recent.snapshot().connections.inFlight, 3)
  assert.deepEqual([await openConnections('http'), await openConnections('https')], [2, 1], 'open connections, read from the same set')
  assert.match(fragments(journey.recent.snapshot()).connections, /<b>3<\/b> open · <b>3<\/b> requests in flight/)
  releaseAll()
  for (const conn of [a, b, c]) await conn.read(text => text.includes('{"ok":true}'))
  // The scrape after the responses finished: each label set seen is still there, at 0.
  await until('all finished', async () => await active('GET', 'http') === 0 && await active('POST', 'http') === 0 && await active('GET', 'https') === 0)
  assert.equal(journey.recent.snapshot().connections.inFlight, 0)
  for (const conn of [a, b, c]) conn.close()
  await until('the connections closed', async () => await openConnections('http') === 0 && await openConnections('https') === 0)
})

test('a request whose client leaves is no longer in flight', async () => {
  const a = await connect(ports.http)
  await a.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n')
  await until('the handler holding', async () => held.length === 1)
  assert.equal(await active('GET', 'http'), 1)
  a.socket.destroy()
  await until('the cut-off request gone', async () => await active('GET', 'http') === 0)
  releaseAll()
})

test('HTTP/2: every stream in flight on one connection counts, and a cancelled one leaves at once', async () => {
  const session = h2connect(`http://127.0.0.1:${ports.h2}`)
  try {
    const streams = [0, 1, 2].map(() => session.request({ ':path': '/hold' }))
    const bodies = streams.map(s => new Promise<string>(resolve => { let body = ''; s.setEncoding('utf8'); s.on('data', (d: string) => { body += d }); s.on('end', () => resolve(body)) }))
    await until('three streams holding', async () => held.length === 3)
    assert.equal(await active('GET', 'http'), 3)
    assert.equal(journey.recent.snapshot().connections.inFlight, 3, 'three streams on one connection')
    // A stream the client cancels leaves with its connection still open: the cut-off itself takes it out.
    streams[0]!.on('error', () => {})
    streams[0]!.close(constants.NGHTTP2_CANCEL)
    await until('the cancelled stream gone', async () => await active('GET', 'http') === 2)
    assert.equal(journey.recent.snapshot().connections.inFlight, 2)
    releaseAll()
    assert.deepEqual(await Promise.all(bodies.slice(1)), ['{"ok":true}', '{"ok":true}'])
    await until('the streams finished', async () => await active('GET', 'http') === 0)
  } finally {
    session.close()
  }
})

test('a closed journey stops counting: no connection it can no longer see close is held open', async () => {
  const own = new Registry()
  const j = createJourney({ registry: own })
  void j.recent
  const app = Fastify({ serverFactory: j.serverFactory({ listener: 'http' }) })
  await app.register(j.plugin)
  app.get('/hold', hold)
  await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const a = await connect((app.server.address() as { port: number }).port)
    await a.write('GET /hold HTTP/1.1\r\nHost: x\r\n\r\n')
    await until('the handler holding', async () => held.length === 1)
    const read = async (name: string, labels: Record<string, string>): Promise<number> => sample(parseMetrics(await own.metrics()), name, labels)
    assert.equal(await read('journey_connections_active', { listener: 'http' }), 1)
    assert.equal(await read('http_server_active_requests', { http_request_method: 'GET', url_scheme: 'http' }), 1)
    assert.equal(j.recent.snapshot().connections.inFlight, 1)
    j.close()
    // Its metrics leave the registry with it (close.test.ts), so nothing reads the held connection as open.
    assert.equal(own.getSingleMetric('journey_connections_active'), undefined)
    assert.equal(own.getSingleMetric('http_server_active_requests'), undefined)
    assert.equal(j.recent.snapshot().connections.inFlight, 0)
    releaseAll()
    await a.read(text => text.includes('{"ok":true}'))
    a.close()
  } finally {
    releaseAll()
    await app.close()
  }
})

test('a method and scheme that only ever finished between scrapes reads 0, not "no data"', async () => {
  const own = new Registry()
  const j = createJourney({ registry: own })
  const app = Fastify({ serverFactory: j.serverFactory({ listener: 'http' }) })
  await app.register(j.plugin)
  app.put('/quick', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const read = async (): Promise<number> =>
      sample(parseMetrics(await own.metrics()), 'http_server_active_requests', { http_request_method: 'PUT', url_scheme: 'http' })
    assert.ok(Number.isNaN(await read()), 'no series before any request')
    const a = await connect((app.server.address() as { port: number }).port)
    await a.write('PUT /quick HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
    await a.read(text => text.includes('{"ok":true}'))
    await until('the request published', async () => (await own.metrics()).includes('http_server_request_duration_seconds_count{http_request_method="PUT"'))
    assert.equal(await read(), 0)
    a.close()
  } finally {
    j.close()
    await app.close()
  }
})
