// Who ended each connection, counted in journey_connections_closed_total{by} and said on its connection span:
// the client (its FIN first), or the server (connection: close after a response, the keep-alive timeout).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { connect } from '../helpers/raw.ts'

const registry = new Registry()
const apps: FastifyInstance[] = []
const ports = { http: 0, https: 0 }

before(async () => {
  const journey = createJourney({ registry })
  const tls = await loadTlsMaterial(undefined, undefined)
  for (const [name, https] of [['http', undefined], ['https', { key: tls.key, cert: tls.cert }]] as const) {
    const app = Fastify({ serverFactory: journey.serverFactory({ keepAliveTimeout: 300, listener: name, https }) })
    await app.register(journey.plugin)
    app.get('/', async () => ({ ok: true }))
    app.post('/json', async (req) => req.body)
    await app.listen({ port: 0, host: '127.0.0.1' })
    ports[name] = (app.server.address() as { port: number }).port
    apps.push(app)
  }
})
after(async () => { for (const app of apps) await app.close() })

const closed = async (listener: string, by: string): Promise<number> =>
  sum(parseMetrics(await registry.metrics()), 'journey_connections_closed_total', { listener, by })

/** Waits until the count of `by` on `listener` reaches `n` (the server sees the close a moment after the client). */
async function closedReaches (listener: string, by: string, n: number): Promise<void> {
  for (let i = 0; i < 100 && await closed(listener, by) < n; i++) await sleep(10)
  assert.equal(await closed(listener, by), n, `${listener} closed by ${by}`)
}

const GET = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
const done = (text: string): boolean => text.includes('{"ok":true}')

for (const listener of ['http', 'https'] as const) {
  test(`${listener}: a client that ends its connection is counted as closed by the client`, async () => {
    const before = await closed(listener, 'client')
    const c = await connect(ports[listener], listener === 'https')
    await c.write(GET)
    await c.read(done)
    c.socket.end()
    await closedReaches(listener, 'client', before + 1)
  })

  test(`${listener}: connection: close after a body that is not JSON, and the keep-alive timeout, are the server's`, async () => {
    const before = await closed(listener, 'server')
    const byClient = await closed(listener, 'client')
    const bad = await connect(ports[listener], listener === 'https')
    await bad.write('POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"message":')
    const answer = await bad.read() // until the server closes
    assert.match(answer, /^HTTP\/1\.1 400/)
    assert.match(answer, /connection: close/i)
    await closedReaches(listener, 'server', before + 1)
    const idle = await connect(ports[listener], listener === 'https')
    await idle.write(GET)
    await idle.read(done)
    await idle.read() // the server closes it after 300 ms of keep-alive
    await closedReaches(listener, 'server', before + 2)
    assert.equal(await closed(listener, 'client'), byClient, 'neither counted as the client\'s')
  })
}

test('both sides\' series exist at 0 from a listener\'s first connection, so the first close of either kind is an increase', async () => {
  const own = new Registry()
  const journey = createJourney({ registry: own })
  const app = Fastify({ serverFactory: journey.serverFactory({ listener: 'first' }) })
  try {
    await app.register(journey.plugin)
    app.get('/', async () => ({ ok: true }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const c = await connect((app.server.address() as { port: number }).port)
    await c.write(GET)
    await c.read(done)
    const text = await own.metrics()
    assert.match(text, /^journey_connections_closed_total\{listener="first",by="client"\} 0$/m, 'open, not yet closed: both at 0')
    assert.match(text, /^journey_connections_closed_total\{listener="first",by="server"\} 0$/m)
    c.socket.end()
  } finally {
    await app.close()
    await journey.close()
  }
})
