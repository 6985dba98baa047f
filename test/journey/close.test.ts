// journey.close() as an app built once per test uses it: a closed journey leaves its registry free for the
// next one (prom-client refuses a second metric of the same name), and two live journeys on one registry
// are refused at once, saying why. And a closed journey's consumers stop listening: left subscribed, each
// would keep working on records nobody reads (and hold what they kept) for the life of the process.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import { createJourney, journeyTracing, type Journey } from '../../src/journey/index.ts'
import { channels } from '../../src/journey/publish.ts'
import { METRIC } from '../../src/journey/stages.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'

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
