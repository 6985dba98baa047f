// journey.close() as an app built once per test uses it: a closed journey leaves its registry free for the
// next one (prom-client refuses a second metric of the same name), and two live journeys on one registry
// are refused at once, saying why. And a closed journey's consumers stop listening: left subscribed, each
// would keep working on records nobody reads (and hold what they kept) for the life of the process.
import assert from 'node:assert/strict'
import { connect as connectH2 } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { test } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { createJourney, journeyTracing, type Journey } from '../../src/journey/index.ts'
import { channels } from '../../src/journey/publish.ts'
import { METRIC } from '../../src/journey/stages.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'

async function build (registry: Registry): Promise<{ app: FastifyInstance, journey: Journey }> {
  const journey = createJourney({ registry })
  const app = Fastify()
  app.addHook('onClose', async () => journey.close())
  await app.register(journey.plugin)
  app.get('/', async () => ({ hello: 'journey' }))
  return { app, journey }
}

test('an app built, served and closed three times over one registry: each journey counts only its own requests', async () => {
  const registry = new Registry()
  for (let round = 1; round <= 3; round++) {
    const { app } = await build(registry)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as { port: number }).port
    for (let i = 0; i < round; i++) {
      const r = await request(`http://127.0.0.1:${port}/`)
      await r.body.text()
    }
    const m = parseMetrics(await registry.metrics())
    assert.equal(sum(m, METRIC.requestDuration + '_count', {}), round, `round ${round}: its own requests only`)
    await app.close()
    const left = (await registry.getMetricsAsJSON()).map(metric => metric.name)
    assert.deepEqual(left, [], 'a closed journey leaves no metric behind')
  }
})

test('two live journeys on one registry: the second is refused, naming the first one\'s metric and the way out', async () => {
  const registry = new Registry()
  const first = createJourney({ registry })
  try {
    assert.throws(() => createJourney({ registry }), (err: Error) => {
      assert.match(err.message, /journey_stage_duration_seconds/)
      assert.match(err.message, /close\(\)/)
      return true
    })
    // Nothing half-registered by the refused one: the first journey's metrics are all still there, once.
    const names = (await registry.getMetricsAsJSON()).map(metric => metric.name)
    assert.equal(new Set(names).size, names.length)
    assert.ok(names.includes(METRIC.stageDuration))
  } finally {
    first.close()
  }
  createJourney({ registry }).close() // free again
})

test('a closed journey leaves no consumer listening: spans, metrics and the page\'s view each unsubscribe from every channel', () => {
  const listening = (): string[] => Object.entries(channels).filter(([, c]) => c.hasSubscribers).map(([name]) => name)
  assert.deepEqual(listening(), [], 'nothing else in this process listens')
  const tracing = journeyTracing({ spanProcessors: [new SimpleSpanProcessor({ exporter: new InMemorySpanExporter() })] })
  const journey = createJourney({ registry: new Registry(), tracing })
  void journey.recent // the page's view starts on first use
  assert.deepEqual(listening().sort(), Object.keys(channels).sort(), 'a live journey listens on every channel')
  journey.close()
  assert.deepEqual(listening(), [])
})

// Fastify runs its onClose hooks, the journey's close among them, as soon as the server's close() returns,
// which it does when its last connection is destroyed: that connection's request still running and the
// connection itself end only at its 'close', a loop turn later. Closed at once, the journey lost both —
// a client leaving while the app shut down left no span, on HTTP/1.1, HTTPS and HTTP/2 alike.
for (const protocol of ['http', 'https', 'h2'] as const) {
  test(`${protocol}: a client that leaves while the app closes, the last connection, still has its request's and its connection's spans`, async () => {
    const exporter = new InMemorySpanExporter()
    const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter })] })
    const provider = new TracerProvider(tracing.sdkOptions)
    const journey = createJourney({ registry: new Registry(), tracing, tracer: provider.getTracer('request-journey') })
    const tls = protocol === 'http' ? undefined : await loadTlsMaterial(undefined, undefined)
    const https = tls === undefined ? undefined : { key: tls.key, cert: tls.cert }
    // One instance type for the three: the test uses nothing that tells them apart.
    const app = (Fastify as (options: object) => FastifyInstance)(protocol === 'h2' ? { http2: true, https } : { https })
    app.addHook('onClose', async () => journey.close()) // as the README's set-up has it
    await app.register(journey.plugin)
    let entered!: () => void
    const inHandler = new Promise<void>(resolve => { entered = resolve })
    const never = new Promise<void>(() => {})
    app.get('/wait', async () => { entered(); await never; return 'never' })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as { port: number }).port

    let leave: () => void
    if (protocol === 'h2') {
      const session = connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false })
      session.on('error', () => {})
      session.request({ ':path': '/wait' }).on('error', () => {}).end()
      leave = () => session.socket.destroy()
    } else {
      const socket: Socket = tls === undefined ? connect(port, '127.0.0.1') : tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      socket.on('error', () => {})
      socket.write('GET /wait HTTP/1.1\r\nHost: x\r\n\r\n')
      leave = () => socket.destroy()
    }
    await inHandler
    const closed = app.close()
    // Only once the server is closing, so that this connection's end is what lets its close() return.
    while (app.server.listening) await new Promise(resolve => setImmediate(resolve))
    leave()
    await closed

    const spans = exporter.getFinishedSpans()
    const root = spans.find(s => s.name === 'GET /wait')
    assert.ok(root !== undefined, `the request's span, exported before app.close() resolved (got: ${spans.map(s => s.name).join(', ') || 'none'})`)
    assert.equal(root.attributes['journey.aborted'], true)
    assert.equal(root.attributes['journey.aborted_by'], 'client')
    assert.ok(spans.some(s => s.name === 'journey.handler' && s.parentSpanContext?.spanId === root.spanContext().spanId), 'its handler stage, cut off')
    const connection = spans.find(s => s.name === 'journey.connection')
    assert.ok(connection !== undefined, 'the connection\'s span')
    assert.equal(connection.attributes['journey.connection.closed_by'], 'client')
    await provider.shutdown()
  })
}
