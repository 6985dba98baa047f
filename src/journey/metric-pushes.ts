// Metric pushes by OTLP, counted. The SDK's periodic reader only logs a failed push (through diag), so an
// operator could neither graph nor alert on pushes that stopped arriving; wrapped by countedMetricExporter,
// each push's result is journey_metric_pushes_total{result}, which the JourneyMetricPushDown alert reads
// (as journey_spans_exported_total is for spans: span-pipeline.ts).
//
// Typed by its shape, not by @opentelemetry/sdk-metrics' PushMetricExporter: the plugin imports nothing
// from that package (metric-producer.ts says why), and the SDK's reader takes any object of this shape.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { Counter } from 'prom-client'
import { asPromClientRegistry, type MetricsRegistry } from './metrics-registry.ts'
import { EXPORT_METRIC } from './stages.ts'

/**
 * What a metric reader calls on its exporter (PushMetricExporter's members). `any` where the SDK's own types
 * go (its ResourceMetrics, InstrumentType, aggregations), which the plugin does not import.
 */
export interface MetricPushExporter<M = any> {
  export: (metrics: M, done: (result: ExportResult) => void) => void
  forceFlush: () => Promise<void>
  shutdown: () => Promise<void>
  selectAggregationTemporality?: (instrumentType: any) => any
  selectAggregation?: (instrumentType: any) => any
}

/**
 * `exporter` with each push's result counted in `registry` (one such exporter per registry). Counted when
 * the exporter calls back, so a push the reader gave up on at its timeout is still counted as what it
 * became. Both results start at 0 so the first of either is an increase Prometheus sees.
 */
export function countedMetricExporter<E extends MetricPushExporter> (exporter: E, registry: MetricsRegistry): MetricPushExporter<Parameters<E['export']>[0]> {
  const pushes = new Counter({
    name: EXPORT_METRIC.metricPushes,
    help: 'Pushes of the metrics by OTLP (a metric reader\'s exports), by result: one each export interval and one at shutdown.',
    labelNames: ['result'] as const,
    registers: [asPromClientRegistry(registry)]
  })
  pushes.inc({ result: 'success' }, 0)
  pushes.inc({ result: 'failure' }, 0)
  return {
    export (metrics, done) {
      exporter.export(metrics, (result) => {
        pushes.inc({ result: result.code === ExportResultCode.SUCCESS ? 'success' : 'failure' })
        done(result)
      })
    },
    forceFlush: async () => { await exporter.forceFlush() },
    shutdown: async () => { await exporter.shutdown() },
    // Only the SDK's own instruments use these (a producer chooses its own); passed on all the same.
    selectAggregationTemporality: exporter.selectAggregationTemporality?.bind(exporter),
    selectAggregation: exporter.selectAggregation?.bind(exporter)
  }
}
