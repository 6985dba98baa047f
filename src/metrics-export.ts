// OTEL_METRICS_EXPORTER=otlp: the same metrics /metrics serves, pushed by OTLP as well, for pipelines that
// take metrics from an OpenTelemetry collector rather than by scraping. prom-client stays the only
// place metrics are recorded; a MeterProvider's periodic reader collects its registry through
// registryMetricProducer (src/journey/metric-producer.ts) and hands it to the SDK's OTLP metric exporter.
//
// The SDK and the exporter are imported only when this is asked for. A collector that is down costs one
// failed export per interval (said in the log once a minute), nothing queued: each collection is sent once,
// retried by the exporter for at most OTEL_EXPORTER_OTLP_TIMEOUT (10 s), then dropped — and counted in
// journey_metric_pushes_total{result} (the plugin's countedMetricExporter), as span exports are in
// journey_spans_exported_total.
import type { Resource } from '@opentelemetry/resources'
import type { MeterProvider } from '@opentelemetry/sdk-metrics'
import type { Registry } from 'prom-client'
import { countedMetricExporter, registryMetricProducer, type BridgeMetricProducer, type JsonMetricsSource } from './journey/index.ts'
import { metricExporterNames, metricsTemporality, otlpProtocol, positiveIntFromEnv } from './otel-env.ts'

type Env = Record<string, string | undefined>

/** The reader's interval and timeout (OTEL_METRIC_EXPORT_INTERVAL/_TIMEOUT), the timeout no longer than the interval: the SDK refuses that. */
export function exportTiming (env: Env): { exportIntervalMillis: number, exportTimeoutMillis: number } {
  const exportIntervalMillis = positiveIntFromEnv(env, 'OTEL_METRIC_EXPORT_INTERVAL', 60_000)
  const exportTimeoutMillis = Math.min(positiveIntFromEnv(env, 'OTEL_METRIC_EXPORT_TIMEOUT', 30_000), exportIntervalMillis)
  return { exportIntervalMillis, exportTimeoutMillis }
}

/**
 * `producer`, and a promise for the end of its next collection that starts after the call. Shutdown's last
 * push needs the registry read while the journey's series are still in it, not the push delivered: waiting
 * only for the reading lets the export run alongside the span flush, one deadline for both.
 */
export function watchCollections (producer: BridgeMetricProducer): { producer: BridgeMetricProducer, next: () => Promise<void> } {
  let started = 0
  const waiting: Array<{ after: number, resolve: () => void }> = []
  return {
    producer: {
      async collect (options) {
        const id = ++started
        try {
          return await producer.collect(options)
        } finally {
          for (let i = waiting.length - 1; i >= 0; i--) {
            if (waiting[i]!.after < id) waiting.splice(i, 1)[0]!.resolve()
          }
        }
      }
    },
    next: async () => { await new Promise<void>(resolve => waiting.push({ after: started, resolve })) }
  }
}

export interface MetricsExport {
  provider: MeterProvider
  /** Resolves once every reader has finished a collection begun after this call (the mark is taken at once). */
  collected: () => Promise<void>
}

/**
 * A MeterProvider pushing `registry` by OTLP (and/or to the console) as OTEL_METRICS_EXPORTER asks, or
 * undefined when it asks for neither (unset, `prometheus`, `none`: scraping /metrics only).
 */
export async function startMetricsExport (env: Env, registry: Registry<any>, resourceOf: () => Promise<Resource>): Promise<MetricsExport | undefined> {
  const names = metricExporterNames(env)
  if (names.includes('none') || !(names.includes('otlp') || names.includes('console'))) return undefined
  const { MeterProvider, PeriodicExportingMetricReader, ConsoleMetricExporter } = await import('@opentelemetry/sdk-metrics')
  // target_info is how a scrape learns the resource (OpenTelemetry's Prometheus convention); a push carries
  // the resource itself, and a Prometheus receiving OTLP builds its own target_info from it.
  const source: JsonMetricsSource = { getMetricsAsJSON: async () => (await registry.getMetricsAsJSON()).filter(m => m.name !== 'target_info') }
  const timing = exportTiming(env)
  const readers = []
  const watches: Array<ReturnType<typeof watchCollections>> = []
  const watched = (producer: BridgeMetricProducer): BridgeMetricProducer => {
    const w = watchCollections(producer)
    watches.push(w)
    return w.producer
  }
  if (names.includes('otlp')) {
    // Each exporter reads its endpoint (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT
    // + /v1/metrics), headers, timeout and compression from the environment, as the trace exporters do.
    const { protocol } = otlpProtocol(env, 'METRICS') // an unknown value is said at start-up (otel-env.ts)
    const exporter = protocol === 'grpc'
      ? new (await import('@opentelemetry/exporter-metrics-otlp-grpc')).OTLPMetricExporter()
      : protocol === 'http/json'
        ? new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter()
        : new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter()
    // A producer per reader: in delta mode each remembers what its own reader was last sent.
    const producer = watched(registryMetricProducer(source, { temporality: metricsTemporality(env).temporality }))
    readers.push(new PeriodicExportingMetricReader({ exporter: countedMetricExporter(exporter, registry), metricProducers: [producer], ...timing }))
  }
  if (names.includes('console')) readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), metricProducers: [watched(registryMetricProducer(source))], ...timing }))
  const provider = new MeterProvider({ resource: await resourceOf(), readers })
  return { provider, collected: async () => { await Promise.all(watches.map(w => w.next())) } }
}
