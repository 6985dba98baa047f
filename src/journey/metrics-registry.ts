// The registry the journey's metrics go into: prom-client 15's Registry, or that of its successor
// @prometheus-io/client (prom-client renamed under the Prometheus organisation; fastify-metrics 14 uses it).
// The journey builds its counters and gauges with prom-client's classes and its histograms itself
// (histogram.ts); either registry renders any metric that answers get() as prom-client's metrics do, so
// only the methods the journey calls are asked of it here. Naming one library's Registry class instead
// would make a TypeScript app on the other cast its registry (their classes' types do not match).
import type { Registry } from 'prom-client'

export interface MetricsRegistry {
  registerMetric: (metric: never) => void
  getSingleMetric: (name: string) => unknown
  removeSingleMetric: (name: string) => void
  metrics: () => Promise<string>
  readonly contentType: string
}

/** The registry as prom-client's metric constructors type their `registers` (they only call registerMetric on it). */
export function asPromClientRegistry (registry: MetricsRegistry): Registry {
  return registry as unknown as Registry
}
