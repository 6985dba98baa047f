// registryMetricProducer: the journey's registry collected by the OpenTelemetry SDK's own reader (the real
// MeterProvider, PeriodicExportingMetricReader and InMemoryMetricExporter) carries the same numbers as a
// scrape of the same registry over HTTP, taken at the same moment, for every kind of metric it has.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { ValueType } from '@opentelemetry/api'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AggregationTemporality, DataPointType, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader,
  type HistogramMetricData, type MetricData, type ResourceMetrics, type SumMetricData
} from '@opentelemetry/sdk-metrics'
import Fastify, { type FastifyInstance } from 'fastify'
import { Counter, Registry, Summary } from 'prom-client'
import { Client } from 'undici'
import { createJourney, exposition, registryMetricProducer } from '../../src/journey/index.ts'
import { STAGE_BUCKETS } from '../../src/journey/stages.ts'
import { CUMULATIVE, DATA_POINT, histogramPoints, unitOf } from '../../src/journey/metric-producer.ts'
import { DELTA } from '../../src/journey/metric-delta.ts'
import { parseMetrics, sample, type Metrics } from '../../experiments/lib/metrics.ts'

const registry = new Registry()
let app: FastifyInstance
let client: Client

before(async () => {
  const journey = createJourney({ registry, ignoreRoutes: ['/metrics'] })
  app = Fastify()
  await app.register(journey.plugin)
  app.get('/a', async () => ({ ok: true }))
  app.post('/b', async (req) => req.body)
  app.get('/metrics', async (req, reply) => {
    const { contentType, body } = await exposition(registry, req.headers.accept)
    return reply.type(contentType).send(body)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  client = new Client(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
})
after(async () => { await client.close(); await app.close() })

async function load (): Promise<void> {
  for (let i = 0; i < 5; i++) await (await client.request({ method: 'GET', path: '/a' })).body.dump()
  for (let i = 0; i < 3; i++) {
    await (await client.request({ method: 'POST', path: '/b', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ i }) })).body.dump()
  }
  await (await client.request({ method: 'GET', path: '/nope' })).body.dump()
}

/** One collection through the SDK's reader, and a scrape over HTTP with nothing served in between. */
async function collectAndScrape (): Promise<{ rm: ResourceMetrics, scraped: Metrics }> {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000, metricProducers: [registryMetricProducer(registry)] })
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'metric-producer-test' }), readers: [reader] })
  try {
    await reader.forceFlush()
    // Over the load's own keep-alive connection: a new one would be accepted after the collection.
    const scraped = parseMetrics(await (await client.request({ method: 'GET', path: '/metrics' })).body.text())
    const [rm] = exporter.getMetrics()
    assert.ok(rm !== undefined, 'the reader exported one collection')
    return { rm, scraped }
  } finally {
    await provider.shutdown()
  }
}

function metric (rm: ResourceMetrics, name: string): MetricData {
  const found = rm.scopeMetrics.flatMap(s => s.metrics).filter(m => m.descriptor.name === name)
  assert.equal(found.length, 1, `${name} once`)
  return found[0]!
}

test('the constants written out in the producer are the SDK\'s own enum values', () => {
  assert.equal(DATA_POINT.HISTOGRAM, DataPointType.HISTOGRAM)
  assert.equal(DATA_POINT.GAUGE, DataPointType.GAUGE)
  assert.equal(DATA_POINT.SUM, DataPointType.SUM)
  assert.equal(CUMULATIVE, AggregationTemporality.CUMULATIVE)
  assert.equal(ValueType.DOUBLE, 1)
})

test('through the SDK\'s reader, every stage histogram, counter and gauge carries what a scrape of the same registry says', async () => {
  await load()
  const { rm, scraped } = await collectAndScrape()
  assert.equal(rm.resource.attributes['service.name'], 'metric-producer-test', 'the resource is the MeterProvider\'s')
  assert.deepEqual(rm.scopeMetrics.map(s => s.scope.name), ['request-journey'])

  const stages = metric(rm, 'journey_stage_duration_seconds') as HistogramMetricData
  assert.equal(stages.dataPointType, DataPointType.HISTOGRAM)
  assert.equal(stages.aggregationTemporality, AggregationTemporality.CUMULATIVE)
  assert.equal(stages.descriptor.unit, 's')
  const handlerA = stages.dataPoints.find(p => p.attributes.stage === 'handler' && p.attributes.route === '/a')
  assert.ok(handlerA !== undefined)
  assert.deepEqual(handlerA.attributes, { stage: 'handler', method: 'GET', route: '/a' }, 'the scrape\'s labels, without le')
  assert.deepEqual(handlerA.value.buckets.boundaries, [...STAGE_BUCKETS])
  assert.equal(handlerA.value.buckets.counts.length, STAGE_BUCKETS.length + 1, 'one more bucket than bounds: +Inf')
  assert.equal(handlerA.value.count, 5)
  assert.equal(handlerA.value.buckets.counts.reduce((a, b) => a + b, 0), 5, 'per-bucket counts add up to the count')
  // Every stage and route: count, sum, and each cumulative bucket as the scrape has them.
  for (const p of stages.dataPoints) {
    const labels = p.attributes as Record<string, string>
    assert.equal(p.value.count, sample(scraped, 'journey_stage_duration_seconds_count', labels), JSON.stringify(labels))
    assert.equal(p.value.sum, sample(scraped, 'journey_stage_duration_seconds_sum', labels))
    let cumulative = 0
    p.value.buckets.boundaries.forEach((le, i) => {
      cumulative += p.value.buckets.counts[i]!
      assert.equal(cumulative, sample(scraped, 'journey_stage_duration_seconds_bucket', { ...labels, le: String(le) }), `${JSON.stringify(labels)} le=${le}`)
    })
  }
  assert.ok(stages.dataPoints.some(p => p.attributes.stage === 'decode' && p.attributes.route === '/b' && p.value.count === 3))

  const requests = metric(rm, 'http_server_request_duration_seconds') as HistogramMetricData
  const notFound = requests.dataPoints.find(p => p.attributes.http_response_status_code === '404')
  assert.equal(notFound?.value.count, 1)

  const accepted = metric(rm, 'journey_connections_accepted_total') as SumMetricData
  assert.equal(accepted.dataPointType, DataPointType.SUM)
  assert.equal(accepted.isMonotonic, true)
  assert.equal(accepted.descriptor.unit, '')
  assert.equal(accepted.dataPoints.find(p => p.attributes.listener === 'http')?.value, sample(scraped, 'journey_connections_accepted_total', { listener: 'http' }))

  const active = metric(rm, 'journey_connections_active')
  assert.equal(active.dataPointType, DataPointType.GAUGE)
  assert.equal((active as { dataPoints: Array<{ value: number }> }).dataPoints[0]?.value, sample(scraped, 'journey_connections_active', { listener: 'http' }))
})

test('counts are cumulative from the process\'s start: a second collection has the first\'s plus what came between, from the same start time', async () => {
  const first = await collectAndScrape()
  await (await client.request({ method: 'GET', path: '/a' })).body.dump()
  const second = await collectAndScrape()
  const handlerOf = (rm: ResourceMetrics) => (metric(rm, 'journey_stage_duration_seconds') as HistogramMetricData).dataPoints
    .find(p => p.attributes.stage === 'handler' && p.attributes.route === '/a')!
  const a = handlerOf(first.rm)
  const b = handlerOf(second.rm)
  assert.equal(b.value.count, a.value.count + 1)
  assert.deepEqual(b.startTime, a.startTime)
  const originMs = performance.timeOrigin
  assert.ok(Math.abs(b.startTime[0] * 1000 + b.startTime[1] / 1e6 - originMs) < 1, 'the start is the process\'s')
  assert.ok(b.endTime[0] > a.startTime[0] || (b.endTime[0] === a.startTime[0] && b.endTime[1] >= a.startTime[1]))
})

test('the app\'s own metrics in the same registry come along; a summary is left out, and a registry that throws is an error of that collection, not a thrown one', async () => {
  const own = new Registry()
  new Counter({ name: 'orders_total', help: 'Orders.', labelNames: ['kind'], registers: [own] }).inc({ kind: 'book' }, 3)
  new Summary({ name: 'old_latency_seconds', help: 'A summary.', registers: [own] }).observe(0.2)
  const result = await registryMetricProducer(own).collect()
  const names = result.resourceMetrics.scopeMetrics.flatMap(s => s.metrics).map(m => m.descriptor.name)
  assert.deepEqual(names, ['orders_total'])
  assert.deepEqual(result.errors, [])

  const broken = await registryMetricProducer({ getMetricsAsJSON: async () => { throw new Error('collect callback failed') } }).collect()
  assert.deepEqual(broken.resourceMetrics.scopeMetrics, [])
  assert.equal((broken.errors[0] as Error).message, 'collect callback failed')
})

test('units come from the name\'s suffix; histogram buckets become per-bucket counts whatever order the registry lists them in', () => {
  assert.equal(unitOf('journey_stage_duration_seconds'), 's')
  assert.equal(unitOf('journey_response_written_bytes'), 'By')
  assert.equal(unitOf('process_cpu_seconds_total'), 's')
  assert.equal(unitOf('journey_connections_accepted_total'), '')
  const t: [number, number] = [1, 0]
  const points = histogramPoints({
    name: 'h',
    help: '',
    type: 'histogram',
    values: [
      { metricName: 'h_bucket', labels: { le: '+Inf', r: 'x' }, value: 6 },
      { metricName: 'h_bucket', labels: { le: 0.5, r: 'x' }, value: 4 },
      { metricName: 'h_bucket', labels: { le: 0.1, r: 'x' }, value: 1 },
      { metricName: 'h_sum', labels: { r: 'x' }, value: 2.5 },
      { metricName: 'h_count', labels: { r: 'x' }, value: 6 }
    ]
  }, t, t)
  assert.deepEqual(points.map(p => ({ attributes: p.attributes, value: p.value })), [
    { attributes: { r: 'x' }, value: { buckets: { boundaries: [0.1, 0.5], counts: [1, 3, 2] }, sum: 2.5, count: 6 } }
  ])
  // Series interleaved, their keys in another order, one label set inside another: each value still goes
  // to its own series (the producer takes a shortcut when a value's series is the one before it).
  const mixed = histogramPoints({
    name: 'h',
    help: '',
    type: 'histogram',
    values: [
      { metricName: 'h_bucket', labels: { r: 'x', le: 1 }, value: 1 },
      { metricName: 'h_bucket', labels: { r: 'x', m: 'GET', le: 1 }, value: 2 },
      { metricName: 'h_bucket', labels: { le: '+Inf', m: 'GET', r: 'x' }, value: 5 },
      { metricName: 'h_bucket', labels: { le: '+Inf', r: 'x' }, value: 3 },
      { metricName: 'h_sum', labels: { m: 'GET', r: 'x' }, value: 9 },
      { metricName: 'h_sum', labels: { r: 'x' }, value: 4 },
      { metricName: 'h_count', labels: { r: 'x' }, value: 3 },
      { metricName: 'h_count', labels: { r: 'x', m: 'GET' }, value: 5 }
    ]
  }, t, t)
  assert.deepEqual(mixed.map(p => ({ attributes: p.attributes, value: p.value })), [
    { attributes: { r: 'x' }, value: { buckets: { boundaries: [1], counts: [1, 2] }, sum: 4, count: 3 } },
    { attributes: { r: 'x', m: 'GET' }, value: { buckets: { boundaries: [1], counts: [2, 3] }, sum: 9, count: 5 } }
  ])
})

test('over @prometheus-io/client\'s registry too (prom-client\'s successor, fastify-metrics 14\'s): the same producer, the journey\'s histograms in it', async () => {
  const { Registry: IoRegistry } = await import('@prometheus-io/client')
  const io = new IoRegistry()
  const journey = createJourney({ registry: io })
  const other = Fastify()
  await other.register(journey.plugin)
  other.get('/c', async () => ({ ok: true }))
  await other.listen({ port: 0, host: '127.0.0.1' })
  try {
    await fetch(`http://127.0.0.1:${(other.server.address() as { port: number }).port}/c`).then(async r => await r.arrayBuffer())
    const result = await registryMetricProducer(io).collect()
    const stages = result.resourceMetrics.scopeMetrics.flatMap(s => s.metrics).find(m => m.descriptor.name === 'journey_stage_duration_seconds')
    assert.ok(stages?.dataPointType === DATA_POINT.HISTOGRAM)
    assert.equal(stages.dataPoints.find(p => p.attributes.stage === 'handler' && p.attributes.route === '/c')?.value.count, 1)
  } finally {
    await other.close()
    journey.close()
  }
})

test('temporality delta: each collection says what changed since the one before, from where it ended; unchanged series are left out; a reset starts again from the new total', async () => {
  const { Histogram } = await import('prom-client')
  const own = new Registry()
  const orders = new Counter({ name: 'orders_total', help: 'Orders.', labelNames: ['kind'], registers: [own] })
  const latency = new Histogram({ name: 'latency_seconds', help: 'Latency.', buckets: [0.1, 1], registers: [own] })
  orders.inc({ kind: 'book' }, 3)
  orders.inc({ kind: 'pen' }, 1)
  latency.observe(0.05)
  let clock = 1_000_000
  const producer = registryMetricProducer(own, { temporality: 'delta', startTimeMs: 999_000, now: () => clock })
  type Collected = Awaited<ReturnType<typeof producer.collect>>
  const points = (r: Collected, name: string): Array<{ attributes: Record<string, unknown>, value: unknown, startTime: [number, number], endTime: [number, number] }> =>
    r.resourceMetrics.scopeMetrics.flatMap(s => s.metrics).filter(m => m.descriptor.name === name).flatMap(m => {
      assert.equal(m.aggregationTemporality, AggregationTemporality.DELTA)
      return m.dataPoints as never
    })

  const first = await producer.collect()
  assert.deepEqual(points(first, 'orders_total').map(p => [p.attributes.kind, p.value, p.startTime]), [['book', 3, [999, 0]], ['pen', 1, [999, 0]]], 'a first collection counts from the start')
  assert.deepEqual(points(first, 'latency_seconds').map(p => p.value), [{ buckets: { boundaries: [0.1, 1], counts: [1, 0, 0] }, sum: 0.05, count: 1 }])

  clock = 1_060_000
  orders.inc({ kind: 'book' }, 2)
  latency.observe(0.5)
  latency.observe(5)
  const second = await producer.collect()
  assert.deepEqual(points(second, 'orders_total').map(p => [p.attributes.kind, p.value, p.startTime, p.endTime]), [['book', 2, [1000, 0], [1060, 0]]], 'pen did not change: left out')
  const [h] = points(second, 'latency_seconds')
  assert.deepEqual(h?.value, { buckets: { boundaries: [0.1, 1], counts: [0, 1, 1] }, sum: 5.5, count: 2 })

  clock = 1_120_000
  assert.deepEqual((await producer.collect()).resourceMetrics.scopeMetrics, [], 'nothing changed: nothing sent')

  clock = 1_180_000
  own.resetMetrics()
  orders.inc({ kind: 'book' }, 1)
  const afterReset = await producer.collect()
  assert.deepEqual(points(afterReset, 'orders_total').map(p => [p.attributes.kind, p.value]), [['book', 1]], 'not 1 − 5: the new total')
  assert.equal(DELTA, AggregationTemporality.DELTA)
})
