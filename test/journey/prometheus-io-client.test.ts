// prom-client now ships as @prometheus-io/client, under the Prometheus organisation, and fastify-metrics 14
// uses it. A service on it hands the journey that registry: one /metrics then serves both plugins' series
// (fastify-metrics' own endpoint), and an OpenMetrics registry's exemplars reach a real Prometheus.
// (This file is type-checked too: neither registry below is cast.)
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { register, Registry } from '@prometheus-io/client'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import { request } from 'undici'
import { createJourney, exposition, journeyTracing } from '../../src/journey/index.ts'
import { parseMetrics, sample } from '../../experiments/lib/metrics.ts'
import { skipWithoutPrometheus, startPrometheus } from '../helpers/prometheus.ts'

const closing: Array<() => Promise<unknown> | void> = []
after(async () => { for (const close of closing.reverse()) await close() })

test('with fastify-metrics 14, the journey on its @prometheus-io/client registry: one /metrics, both plugins\' series', async () => {
  const journey = createJourney({ registry: register, ignoreRoutes: ['/metrics'] })
  const app = Fastify()
  await app.register(journey.plugin)
  await app.register(fastifyMetrics.default, { endpoint: '/metrics' })
  app.get('/hi/:name', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  closing.push(() => journey.close(), async () => await app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  for (let i = 0; i < 3; i++) await (await request(`${base}/hi/ada`)).body.text()
  await sleep(20)
  const scraped = await request(`${base}/metrics`)
  const metrics = parseMetrics(await scraped.body.text())
  assert.equal(scraped.statusCode, 200)
  for (const stage of ['read', 'parse', 'decode', 'handler', 'serialize', 'write']) {
    assert.equal(sample(metrics, 'journey_stage_duration_seconds_count', { stage, route: '/hi/:name' }), 3, stage)
  }
  assert.equal(sample(metrics, 'http_server_request_duration_seconds_count', { http_route: '/hi/:name' }), 3)
  assert.equal(sample(metrics, 'http_request_duration_seconds_count', { route: '/hi/:name' }), 3, 'fastify-metrics\' own histogram, beside them')
  assert.equal(sample(metrics, 'journey_connections_accepted_total', { listener: 'http' }) > 0, true, 'counters too')
})

test('an OpenMetrics @prometheus-io/client registry through exposition(): a real Prometheus scrapes the journey\'s histograms and their exemplars', { skip: skipWithoutPrometheus, timeout: 60_000 }, async () => {
  const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const spans = new InMemorySpanExporter()
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] })
  const provider = new TracerProvider(tracing.sdkOptions)
  const journey = createJourney({ registry, tracing, tracer: provider.getTracer('test'), ignoreRoutes: ['/metrics'] })
  const app = Fastify()
  await app.register(journey.plugin)
  app.get('/metrics', async (req, reply) => {
    const { contentType, body } = await exposition(registry, req.headers.accept)
    return reply.type(contentType).send(body)
  })
  app.get('/hi/:name', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  closing.push(async () => await provider.shutdown(), () => journey.close(), async () => await app.close())
  const port = (app.server.address() as { port: number }).port
  // The text form for everyone else, with the counters' `_total` kept.
  const text = await request(`http://127.0.0.1:${port}/metrics`)
  assert.match(text.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/)
  assert.match(await text.body.text(), /^journey_connections_accepted_total\{listener="http"\} \d+$/m)

  const prometheus = await startPrometheus(`127.0.0.1:${port}`, '1s')
  closing.push(() => prometheus.stop())
  const start = Date.now() / 1000
  const traced: string[] = []
  for (let i = 0; i < 5; i++) {
    await (await request(`http://127.0.0.1:${port}/hi/ada`)).body.text()
    await sleep(300)
  }
  for (const s of spans.getFinishedSpans()) if (s.name === 'GET /hi/:name') traced.push(s.spanContext().traceId)
  assert.equal(traced.length, 5)
  let count = 0
  let exemplars: Array<{ labels: Record<string, string> }> = []
  for (let i = 0; i < 50 && (count < 5 || exemplars.length === 0); i++) {
    await sleep(300)
    const v = await prometheus.api('/api/v1/query', { query: 'sum(journey_stage_duration_seconds_count{stage="handler",route="/hi/:name"})' }) as { result: Array<{ value: [number, string] }> }
    count = Number(v.result[0]?.value[1] ?? 0)
    const q = await prometheus.api('/api/v1/query_exemplars', { query: 'http_server_request_duration_seconds_bucket{http_route="/hi/:name"}', start: String(start - 60), end: String(Date.now() / 1000 + 60) }) as Array<{ exemplars: Array<{ labels: Record<string, string> }> }>
    exemplars = q.flatMap(series => series.exemplars)
  }
  const targets = await prometheus.api('/api/v1/targets', {}) as { activeTargets: Array<{ labels: { job: string }, health: string, lastError: string }> }
  const scrapedApp = targets.activeTargets.filter(t => t.labels.job === 'request-journey')
  assert.deepEqual(scrapedApp.map(t => [t.health, t.lastError]), [['up', '']], 'Prometheus parsed the scrapes')
  assert.equal(count, 5, 'every request in the handler stage\'s histogram, as Prometheus parsed it')
  assert.ok(exemplars.length > 0, 'exemplars stored')
  for (const e of exemplars) assert.ok(traced.includes(e.labels.traceId!), `an exemplar names a request's trace: ${JSON.stringify(e.labels)}`)
})
