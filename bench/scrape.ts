// What a scrape of the journey's metrics costs as routes grow, against prom-client's own metrics holding the
// same series. A Fastify app with the journey plugin (metrics only) gets N routes, each requested once, so
// every route has its stage histograms; its registry is rendered (Registry.metrics(), the text format) once
// cold and RENDERS more times. The baseline, measured in the same run: the same series — names, label sets,
// buckets — rebuilt as prom-client Histograms, Counters and Gauges in a registry of their own and rendered
// the same way. Each measurement is a fresh process (forked from this file), taking turns, so the first
// render's compiling is counted alike for both.
//
// Why it exists: rendering runs on the event loop, so a request that arrives mid-scrape waits for it; with
// hundreds of routes that is the journey's largest single pause (README, What it survives). A unit test
// cannot hold a time on these machines; this prints it. A third kind, `otlp push`, times what pushing the
// same registry by OTLP costs instead of a scrape (OTEL_METRICS_EXPORTER=otlp): registryMetricProducer's
// collection plus the OTLP exporter's protobuf encoding of it; its "lines" are data points, its MB the body.
//
//   npm run bench:scrape                       # 50 and 500 routes, 10 renders each, 2 rounds
//   ROUTES=100,1000 RENDERS=20 ROUNDS=3 npm run bench:scrape
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { machine } from './servers.ts'
import { median } from './stats.ts'

const ROUTES = (process.env.ROUTES ?? '50,500').split(',').map(Number)
const RENDERS = Number(process.env.RENDERS ?? 10)
const ROUNDS = Number(process.env.ROUNDS ?? 2)
const KINDS = ['journey', 'prom-client', 'otlp push'] as const
type Kind = typeof KINDS[number]

/** One process's figures: the text it rendered, its first (cold) render and the ones after it, in ms. */
interface Renders { lines: number, bytes: number, firstMs: number, thenMs: number[] }

async function measure (kind: Kind, routes: number): Promise<Renders> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { PATH: process.env.PATH, SCRAPE_CHILD: kind, SCRAPE_ROUTES: String(routes), RENDERS: String(RENDERS) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  return await new Promise<Renders>((resolve, reject) => {
    child.once('message', m => resolve(m as Renders))
    child.once('exit', code => reject(new Error(`the ${kind} process (${routes} routes) exited (${code}) without figures`)))
  })
}

const ms = (x: number): string => x >= 100 ? x.toFixed(0) : x.toFixed(1)

async function drive (): Promise<void> {
  const results = new Map<string, Renders[]>()
  for (let r = 0; r < ROUNDS; r++) {
    for (const routes of ROUTES) {
      for (const kind of KINDS) {
        const got = await measure(kind, routes)
        const key = `${routes} ${kind}`
        results.set(key, [...(results.get(key) ?? []), got])
        console.log(`round ${r + 1}, ${routes} routes, ${kind}: ${got.lines} lines, first render ${ms(got.firstMs)} ms, then median ${ms(median(got.thenMs))} ms`)
      }
    }
  }
  console.log(`\n${machine()}\n`)
  console.log('| routes | metrics | lines | MB | first render | later renders (median, max) | against (later) |')
  console.log('|---:|---|---:|---:|---:|---:|---:|')
  for (const routes of ROUTES) {
    const later = (kind: Kind): number => median(results.get(`${routes} ${kind}`)!.map(x => median(x.thenMs)))
    for (const kind of KINDS) {
      const runs = results.get(`${routes} ${kind}`)!
      const ratio = kind === 'journey'
        ? `${(later('journey') / later('prom-client')).toFixed(2)} of prom-client`
        : kind === 'otlp push' ? `${(later('otlp push') / later('journey')).toFixed(2)} of journey` : ''
      console.log(`| ${routes} | ${kind} | ${runs[0]!.lines} | ${(runs[0]!.bytes / 1e6).toFixed(1)} | ${ms(median(runs.map(x => x.firstMs)))} ms | ` +
        `${ms(later(kind))} ms, ${ms(Math.max(...runs.flatMap(x => x.thenMs)))} ms | ${ratio} |`)
    }
  }
  console.log(`\nMedians of ${ROUNDS} round(s), each a fresh process: the first render, then ${RENDERS} more (the max is over all of them). ` +
    'prom-client: the same series as prom-client Histograms, Counters and Gauges, each observed once. ' +
    'otlp push: the journey\'s registry collected by registryMetricProducer and encoded as OTLP/protobuf (lines: data points; MB: the body).')
}

/** Renders once cold and RENDERS times after, and sends the figures to the driver. */
async function report (render: () => Promise<{ lines: number, bytes: number }>): Promise<void> {
  const renders = Number(process.env.RENDERS)
  const times: number[] = []
  let last = { lines: 0, bytes: 0 }
  for (let i = 0; i <= renders; i++) {
    const started = performance.now()
    last = await render()
    times.push(performance.now() - started)
  }
  const result: Renders = { ...last, firstMs: times[0]!, thenMs: times.slice(1) }
  process.send!(result, () => process.exit(0))
}

/** A registry's text exposition, as a scrape renders it. */
function textOf (registry: { metrics (): Promise<string> }): () => Promise<{ lines: number, bytes: number }> {
  return async () => {
    const text = await registry.metrics()
    return { lines: text.split('\n').length, bytes: Buffer.byteLength(text) }
  }
}

// Last, so that everything above is defined before the driver runs.
if (process.env.SCRAPE_CHILD !== undefined) {
  const { default: Fastify } = await import('fastify')
  const client = await import('prom-client')
  const { Pool } = await import('undici')
  const { createJourney } = await import('../src/journey/index.ts')
  const routes = Number(process.env.SCRAPE_ROUTES)
  const registry = new client.Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  await app.register(journey.plugin)
  for (let i = 0; i < routes; i++) app.get(`/r${i}/:id`, async () => ({ i }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const pool = new Pool(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`, { connections: 4, pipelining: 4 })
  await Promise.all(Array.from({ length: routes }, (_, i) => pool.request({ method: 'GET', path: `/r${i}/${i}` }).then(r => r.body.dump())))
  await pool.close()
  await app.close() // the series stay; nothing else runs while rendering

  if (process.env.SCRAPE_CHILD === 'journey') {
    await report(textOf(registry))
  } else if (process.env.SCRAPE_CHILD === 'otlp push') {
    const { registryMetricProducer } = await import('../src/journey/index.ts')
    const { ProtobufMetricsSerializer } = await import('@opentelemetry/otlp-transformer')
    const { resourceFromAttributes } = await import('@opentelemetry/resources')
    const producer = registryMetricProducer(registry)
    const resource = resourceFromAttributes({ 'service.name': 'bench' })
    await report(async () => {
      const { resourceMetrics } = await producer.collect()
      const request: import('@opentelemetry/sdk-metrics').ResourceMetrics = { resource, scopeMetrics: resourceMetrics.scopeMetrics }
      const body = ProtobufMetricsSerializer.serializeRequest(request)
      const points = resourceMetrics.scopeMetrics.flatMap(sm => sm.metrics).reduce((n, m) => n + m.dataPoints.length, 0)
      return { lines: points, bytes: body?.length ?? 0 }
    })
  } else {
    // The same series, as prom-client's own metrics would hold them.
    const base = new client.Registry()
    for (const metric of await registry.getMetricsAsJSON()) {
      const { name, help } = metric
      const type = String(metric.type) // prom-client declares an enum of these strings
      const values = metric.values as Array<{ labels: Record<string, string | number>, value: number, metricName?: string }>
      // Declared, not seen in values: a metric with no series yet renders none in either registry.
      const labelNames = [...(registry.getSingleMetric(name) as { labelNames?: readonly string[] } | undefined)?.labelNames ?? []]
      if (type === 'histogram') {
        const counts = values.filter(v => v.metricName === `${name}_count`)
        const buckets = [...new Set(values.filter(v => v.metricName === `${name}_bucket` && v.labels.le !== '+Inf').map(v => Number(v.labels.le)))]
        const h = new client.Histogram({ name, help, labelNames, buckets, registers: [base] })
        for (const v of counts) h.observe(v.labels, buckets[0] ?? 0)
      } else if (type === 'counter' || type === 'gauge') {
        const m = type === 'counter' ? new client.Counter({ name, help, labelNames, registers: [base] }) : new client.Gauge({ name, help, labelNames, registers: [base] })
        for (const v of values) (m as { inc: (labels: Record<string, string | number>, value: number) => void }).inc(v.labels, 1)
      }
    }
    await report(textOf(base))
  }
} else {
  await drive()
}
