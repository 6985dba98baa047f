// The journey's metrics (or a whole prom-client registry) for an OpenTelemetry metrics pipeline: a
// MetricProducer that a MetricReader of @opentelemetry/sdk-metrics asks at each collection, so the same
// series Prometheus scrapes can also be pushed by OTLP to a collector or any OTLP backend.
//
// Why our own: no JavaScript library bridges prom-client into the OpenTelemetry SDK (Go has one,
// go.opentelemetry.io/contrib/bridges/prometheus, and this follows its choices: names and labels as the
// scrape has them, cumulative temporality from the process's start, summaries left out). It costs nothing
// per request: the registry renders its values only when the reader collects (every 60 s by default).
//
// Nothing is imported from @opentelemetry/sdk-metrics, not even types, so the plugin needs it only in an
// app that builds a reader: the shapes below are the SDK's (MetricProducer, CollectionResult, MetricData),
// and test/journey/metric-producer.test.ts hands this producer to the SDK's own reader, type-checked, and
// holds the numeric enum values equal to the SDK's.
import type { Attributes, HrTime, ValueType } from '@opentelemetry/api'
import { millisToHrTime } from '@opentelemetry/core'
import { DeltaConverter } from './metric-delta.ts'
import { SCOPE_NAME, SCOPE_VERSION } from './version.ts'

/** What is asked of the registry: prom-client's Registry and @prometheus-io/client's both answer it. */
export interface JsonMetricsSource {
  getMetricsAsJSON: () => Promise<ReadonlyArray<Readonly<PromMetricJson>>>
}

// prom-client's types say `type` is a numeric enum; at run time it is the exposition's word ('counter', …).
type Labels = Readonly<Partial<Record<string, string | number>>>
export interface PromMetricJson {
  name: string
  help: string
  type: unknown
  values: ReadonlyArray<{ value: number, labels: Labels, metricName?: string }>
}

// @opentelemetry/sdk-metrics' DataPointType and AggregationTemporality, and @opentelemetry/api's
// ValueType.DOUBLE: numeric enums, written out (the test holds them equal to the SDK's).
export const DATA_POINT = { HISTOGRAM: 0, GAUGE: 2, SUM: 3 } as const
export const CUMULATIVE = 1
const DOUBLE = 1 as ValueType.DOUBLE

export interface Point<T> { readonly startTime: HrTime, readonly endTime: HrTime, readonly attributes: Attributes, readonly value: T }
export interface HistogramValue { buckets: { boundaries: number[], counts: number[] }, sum?: number, count: number }
interface Descriptor { readonly name: string, readonly description: string, readonly unit: string, readonly valueType: ValueType }
// Cumulative, or DELTA (0, metric-delta.ts) when the producer is asked for deltas.
interface Base { readonly descriptor: Descriptor, readonly aggregationTemporality: typeof CUMULATIVE | 0 }
/** The SDK's MetricData, for the three kinds a registry has. */
export type BridgedMetricData =
  | (Base & { readonly dataPointType: typeof DATA_POINT.SUM, readonly dataPoints: Array<Point<number>>, readonly isMonotonic: boolean })
  | (Base & { readonly dataPointType: typeof DATA_POINT.GAUGE, readonly dataPoints: Array<Point<number>> })
  | (Base & { readonly dataPointType: typeof DATA_POINT.HISTOGRAM, readonly dataPoints: Array<Point<HistogramValue>> })
/** The SDK's MetricProducer; the resource is left to the reader, which keeps its MeterProvider's. */
export interface BridgeMetricProducer {
  collect: (options?: { timeoutMillis?: number }) => Promise<{
    resourceMetrics: { resource: never, scopeMetrics: Array<{ scope: { name: string, version?: string }, metrics: BridgedMetricData[] }> }
    errors: unknown[]
  }>
}

/** A Prometheus metric name's unit suffix as UCUM, as the OpenTelemetry-Prometheus compatibility spec maps it. */
export function unitOf (name: string): string {
  const base = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name
  if (base.endsWith('_seconds')) return 's'
  if (base.endsWith('_bytes')) return 'By'
  if (base.endsWith('_ratio')) return '1'
  return ''
}

function attributesOf (labels: Labels, skip?: string): Attributes {
  const out: Attributes = {}
  for (const k in labels) if (k !== skip && labels[k] !== undefined) out[k] = String(labels[k])
  return out
}

/** A label set as one string, whatever order its keys came in. */
export function keyOf (attributes: Attributes): string {
  return JSON.stringify(Object.keys(attributes).sort().map(k => [k, attributes[k]]))
}

interface Pending { attributes: Attributes, buckets: Array<[number, number]>, sum: number, count: number }

/** Whether two values' label sets are the same apart from `le`: the same histogram series. */
function sameSeries (a: Labels, b: Labels): boolean {
  let n = 0
  for (const k in a) {
    if (k === 'le') continue
    if (a[k] !== b[k]) return false
    n++
  }
  for (const k in b) if (k !== 'le') n--
  return n === 0
}

/**
 * One prom-client histogram's values (cumulative `le` buckets, `_sum`, `_count` per label set) as
 * OpenTelemetry histogram points: per-bucket counts over the finite bounds, the last bucket +Inf.
 */
export function histogramPoints (metric: Readonly<PromMetricJson>, startTime: HrTime, endTime: HrTime): Array<Point<HistogramValue>> {
  const byKey = new Map<string, Pending>()
  // Registries list a series' buckets, sum and count one after another, so most values belong to the
  // series before them: comparing with its labels spares a sorted key per bucket, which had made a push
  // with 50 routes take 1.6× a text render's time, 0.7× without (bench/README.md, bench:scrape).
  let lastLabels: Labels | undefined
  let last: Pending | undefined
  const pending = (labels: Labels): Pending => {
    if (last !== undefined && sameSeries(labels, lastLabels!)) return last
    const attributes = attributesOf(labels, 'le')
    const key = keyOf(attributes)
    let p = byKey.get(key)
    if (p === undefined) byKey.set(key, p = { attributes, buckets: [], sum: 0, count: 0 })
    lastLabels = labels
    last = p
    return p
  }
  for (const v of metric.values) {
    const suffix = v.metricName === undefined ? '' : v.metricName.slice(metric.name.length)
    if (suffix === '_bucket') {
      const le = v.labels.le
      pending(v.labels).buckets.push([le === '+Inf' ? Infinity : Number(le), v.value])
    } else if (suffix === '_sum') pending(v.labels).sum = v.value
    else if (suffix === '_count') pending(v.labels).count = v.value
  }
  const points: Array<Point<HistogramValue>> = []
  for (const p of byKey.values()) {
    p.buckets.sort((a, b) => a[0] - b[0])
    const boundaries: number[] = []
    const counts: number[] = []
    let below = 0
    for (const [le, cumulative] of p.buckets) {
      if (le !== Infinity) boundaries.push(le)
      counts.push(cumulative - below)
      below = cumulative
    }
    // A registry that leaves out +Inf (none of ours) still owes OTLP its overflow bucket: count − last le.
    if (p.buckets.at(-1)?.[0] !== Infinity) counts.push(p.count - below)
    points.push({ startTime, endTime, attributes: p.attributes, value: { buckets: { boundaries, counts }, sum: p.sum, count: p.count } })
  }
  return points
}

/** One prom-client metric as OpenTelemetry metric data; undefined for a summary (OTLP's is deprecated) or an unknown type. */
function toMetricData (metric: Readonly<PromMetricJson>, startTime: HrTime, endTime: HrTime): BridgedMetricData | undefined {
  const descriptor = { name: metric.name, description: metric.help, unit: unitOf(metric.name), valueType: DOUBLE }
  const plain = (): Array<Point<number>> =>
    metric.values.map(v => ({ startTime, endTime, attributes: attributesOf(v.labels), value: v.value }))
  switch (String(metric.type)) {
    case 'counter':
      return { descriptor, aggregationTemporality: CUMULATIVE, dataPointType: DATA_POINT.SUM, isMonotonic: true, dataPoints: plain() }
    case 'gauge':
      return { descriptor, aggregationTemporality: CUMULATIVE, dataPointType: DATA_POINT.GAUGE, dataPoints: plain() }
    case 'histogram':
      return { descriptor, aggregationTemporality: CUMULATIVE, dataPointType: DATA_POINT.HISTOGRAM, dataPoints: histogramPoints(metric, startTime, endTime) }
    default:
      return undefined
  }
}

export interface MetricProducerOptions {
  /**
   * `cumulative` (default): totals since `startTimeMs`, as /metrics has them. `delta`: what changed since
   * this producer's previous collection, unchanged series left out (metric-delta.ts) — for backends that
   * take deltas; give each reader its own producer then, since a collection consumes the change it reports.
   */
  temporality?: 'cumulative' | 'delta'
  /** Start of every cumulative series; default the process's start (`performance.timeOrigin`). */
  startTimeMs?: number
  /** Wall clock in ms, for each collection's end time (tests pin it). */
  now?: () => number
}

/**
 * A MetricProducer over a prom-client registry: give it to a MetricReader (`metricProducers: [...]`) of
 * @opentelemetry/sdk-metrics, and each collection carries every metric the registry renders — names and
 * labels as on /metrics, counts cumulative since the process started (or deltas: `temporality`). Summaries are left out; exemplars
 * too (the JavaScript SDK's metric data has no place for them). The resource is the reader's MeterProvider's.
 */
export function registryMetricProducer (registry: JsonMetricsSource, opts: MetricProducerOptions = {}): BridgeMetricProducer {
  const startTime = millisToHrTime(opts.startTimeMs ?? performance.timeOrigin)
  const now = opts.now ?? Date.now
  const scope = SCOPE_VERSION === undefined ? { name: SCOPE_NAME } : { name: SCOPE_NAME, version: SCOPE_VERSION }
  const deltas = opts.temporality === 'delta' ? new DeltaConverter() : undefined
  return {
    async collect () {
      const endTime = millisToHrTime(now())
      const metrics: BridgedMetricData[] = []
      const errors: unknown[] = []
      try {
        for (const m of await registry.getMetricsAsJSON()) {
          const data = toMetricData(m, startTime, endTime)
          if (data !== undefined) metrics.push(data)
        }
      } catch (err) {
        errors.push(err)
      }
      const sent = deltas === undefined ? metrics : deltas.convert(metrics, startTime, endTime)
      const scopeMetrics = sent.length === 0 ? [] : [{ scope, metrics: sent }]
      // The reader keeps its MeterProvider's resource and takes only scopeMetrics from a producer.
      return { resourceMetrics: { resource: undefined as never, scopeMetrics }, errors }
    }
  }
}
