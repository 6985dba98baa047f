// Two journeys in one process (two Fastify apps, each with its own journey and registry) share the
// process's diagnostics channels; each must still measure only the servers it observes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { roots } from '../helpers/spans.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'

async function appOf (journey: ReturnType<typeof createJourney>, route: string): Promise<{ url: string, close: () => Promise<void> }> {
  const app = Fastify({ serverFactory: journey.serverFactory() })
  await app.register(journey.plugin)
  app.get(route, async () => ({ route }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}${route}`, close: () => app.close() }
}

const count = (text: string, route: string): number => sum(parseMetrics(text), 'http_server_request_duration_seconds_count', { http_route: route })
const connections = (text: string): number => sum(parseMetrics(text), 'journey_connections_accepted_total', { listener: 'http' })

test('each journey counts, traces and lists only its own servers\' requests and connections', async () => {
  const spans = new InMemorySpanExporter()
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] })
  const provider = new TracerProvider(tracing.sdkOptions)
  const regA = new Registry()
  const regB = new Registry()
  const a = createJourney({ registry: regA, tracing, tracer: provider.getTracer('a') })
  const b = createJourney({ registry: regB })
  const appA = await appOf(a, '/a')
  const appB = await appOf(b, '/b')
  const pageB = b.recent // the /journey page's view starts collecting on first use
  try {
    for (let i = 0; i < 3; i++) await (await request(appA.url)).body.text()
    const connectionsA = connections(await regA.metrics())
    assert.ok(connectionsA >= 1)
    for (let i = 0; i < 5; i++) await (await request(appB.url, { reset: true })).body.text()
    await new Promise(resolve => setTimeout(resolve, 50))
    const textA = await regA.metrics()
    const textB = await regB.metrics()
    assert.equal(count(textA, '/a'), 3)
    assert.equal(count(textA, '/b'), 0, 'A does not count B\'s requests')
    assert.equal(count(textB, '/b'), 5)
    assert.equal(count(textB, '/a'), 0, 'B does not count A\'s requests')
    assert.equal(connections(textA), connectionsA, 'A does not count B\'s connections')
    assert.equal(connections(textB), 5, 'B counts its own five connections (one per request), not A\'s')
    const page = pageB.snapshot()
    assert.deepEqual(page.recent.map(r => r.route), ['/b', '/b', '/b', '/b', '/b'], 'B\'s page lists B\'s requests only')
    assert.equal(page.connections.active, 0, 'B\'s page saw its five connections open and close, and not A\'s still open')
    await provider.forceFlush()
    const traced = roots(spans.getFinishedSpans()).map(r => r.name)
    assert.deepEqual(traced, ['GET /a', 'GET /a', 'GET /a'], 'A traces its own requests, not B\'s')
  } finally {
    await appA.close()
    await appB.close()
    a.close()
    b.close()
    await provider.shutdown()
  }
})
