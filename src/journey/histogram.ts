// Histogram storage that costs a bucket search and an array increment per observation, rendered through
// the prom-client registry at scrape time.
//
// Why not prom-client's Histogram: its observe() builds and hashes the label object on every call (a few
// allocations and a string join), and the journey observes up to ten histograms per request. Here label
// sets are bound once to a Series and the hot path touches numbers only. The output is the same text
// prom-client writes (buckets, _sum, _count, OpenMetrics exemplars), from the same registry.
import type { MetricsRegistry } from './metrics-registry.ts'

export type ExemplarLabels = Readonly<{ traceId: string, spanId: string }>
export interface Exemplar { labelSet: ExemplarLabels, value: number, timestamp: number }

export class Series {
  readonly labels: Readonly<Record<string, string>>
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array
  readonly exemplars: Array<Exemplar | undefined>
  sum = 0
  count = 0
  /** The histogram's bucket bounds, shared by its series (FastHistogram says why a Float64Array). */
  private readonly bounds: Float64Array

  constructor (labels: Record<string, string>, bounds: Float64Array) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
    this.exemplars = new Array(bounds.length + 1)
  }

  reset (): void {
    this.counts.fill(0)
    this.exemplars.fill(undefined)
    this.sum = 0
    this.count = 0
  }

  observe (value: number): number {
    const b = this.bounds
    let i = 0
    while (i < b.length && value > b[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
    return i
  }

  /**
   * Observe, and let this observation stand for its bucket as the exemplar (a trace to open). The label
   * set and timestamp are the caller's, so one request observed in several histograms shares them.
   */
  observeWithExemplar (value: number, labelSet: ExemplarLabels, timestampSeconds: number): void {
    const i = this.observe(value)
    this.exemplars[i] = { labelSet, value, timestamp: timestampSeconds }
  }
}

/**
 * The series of `all` for these label values (in `labelNames` order), made by `make` from its label set the
 * first time: what FastHistogram and FastCounter (counter.ts) bind their callers to.
 */
export function bindSeries<S> (all: Map<string, S>, labelNames: readonly string[], values: readonly string[], make: (labels: Record<string, string>) => S): S {
  const key = values.join('\u0000')
  let s = all.get(key)
  if (s === undefined) {
    const labels: Record<string, string> = {}
    // An empty value is no label: Prometheus reads `l=""` as l absent, and a push must not send it as an
    // attribute (the semantic conventions leave out what does not apply, such as error.type on a success).
    labelNames.forEach((n, i) => { const v = values[i]; if (v !== undefined && v !== '') labels[n] = v })
    s = make(labels)
    all.set(key, s)
  }
  return s
}

/**
 * Bucket bounds a user gave (createJourney's `buckets`), checked before any metric is registered: finite
 * numbers, strictly ascending (`+Inf` is always added). Unsorted bounds would count observations in the
 * wrong bucket (the search below assumes order), and a bound given twice renders the same `le` twice, a
 * duplicate series, which OpenMetrics forbids (Prometheus 2.42 keeps one of the two, checked).
 */
export function checkBuckets (what: string, bounds: unknown): readonly number[] {
  if (!Array.isArray(bounds)) throw new TypeError(`request-journey: buckets.${what} must be an array of bucket bounds, ascending`)
  bounds.forEach((b: unknown, i) => {
    if (typeof b !== 'number' || !Number.isFinite(b)) {
      throw new TypeError(`request-journey: buckets.${what}[${i}] is ${typeof b === 'number' ? String(b) : JSON.stringify(b)}: bounds are finite numbers (+Inf is always added)`)
    }
    if (i > 0 && b <= (bounds[i - 1] as number)) {
      throw new TypeError(`request-journey: buckets.${what} must be strictly ascending: ${String(bounds[i - 1])} then ${b}`)
    }
  })
  return Object.freeze([...bounds as number[]])
}

interface MetricValue {
  metricName: string
  labels: Readonly<Record<string, string | number>>
  sharedLabels: Readonly<Record<string, string>>
  value: number
  exemplar?: Exemplar
}
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({})
interface MetricData { name: string, help: string, type: string, aggregator: string, values: MetricValue[] }

export class FastHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly labelNames: readonly string[]
  readonly buckets: readonly number[]
  private readonly all = new Map<string, Series>()
  // The bounds once more, in a Float64Array shared by every series: the bucket search in Series.observe is
  // inlined into the metrics consumer once for all histograms, and the callers' arrays are of two element
  // kinds (whole numbers for sizes, fractions for durations), which made that one load site call V8's
  // generic keyed-load IC (callgrind: ten calls a request).
  private readonly bounds: Float64Array
  private readonly leLabels: ReadonlyArray<Readonly<Record<string, string | number>>>
  private readonly bucketName: string
  private readonly sumName: string
  private readonly countName: string

  constructor (opts: { name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registers: MetricsRegistry[] }) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
    this.buckets = opts.buckets
    this.bounds = Float64Array.from(opts.buckets)
    this.leLabels = [...opts.buckets.map(le => Object.freeze({ le })), Object.freeze({ le: '+Inf' })]
    this.bucketName = `${opts.name}_bucket`
    this.sumName = `${opts.name}_sum`
    this.countName = `${opts.name}_count`
    for (const r of opts.registers) r.registerMetric(this as never)
  }

  /** The series for these label values (in labelNames order). Bind once and keep it: this is not the hot path. */
  series (...values: string[]): Series {
    return bindSeries(this.all, this.labelNames, values, labels => new Series(labels, this.bounds))
  }

  /**
   * The registry's text path (Registry.metrics() prefers this method). The series' labels go in as
   * sharedLabels: the registry formats a sharedLabels object once and caches the text by identity, so a
   * scrape formats only `le` per line (≈3× faster with hundreds of routes than spreading the labels).
   */
  async getForPromString (): Promise<MetricData> {
    return this.collect((s, le) => ({ labels: le, sharedLabels: s.labels }))
  }

  /** Plain label sets, for getMetricsAsJSON() and prom-client's cluster aggregation, which ignore sharedLabels. */
  async get (): Promise<MetricData> {
    return this.collect((s, le) => ({ labels: le === NO_LABELS ? s.labels : { ...s.labels, ...le }, sharedLabels: NO_LABELS }))
  }

  private collect (labelsOf: (s: Series, le: Readonly<Record<string, string | number>>) => Pick<MetricValue, 'labels' | 'sharedLabels'>): MetricData {
    const values: MetricValue[] = []
    const le = this.leLabels
    for (const s of this.all.values()) {
      let cumulative = 0
      for (let i = 0; i < le.length; i++) {
        cumulative += s.counts[i]!
        const v: MetricValue = { metricName: this.bucketName, ...labelsOf(s, le[i]!), value: cumulative }
        const ex = s.exemplars[i]
        if (ex !== undefined) v.exemplar = ex
        values.push(v)
      }
      values.push({ metricName: this.sumName, ...labelsOf(s, NO_LABELS), value: s.sum })
      values.push({ metricName: this.countName, ...labelsOf(s, NO_LABELS), value: s.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /**
   * registry.resetMetrics(): every series back to zero, in place. Dropping them (as prom-client does with
   * its label hashes) would leave the series callers have bound counting where no scrape looks.
   */
  reset (): void {
    for (const s of this.all.values()) s.reset()
  }
}
