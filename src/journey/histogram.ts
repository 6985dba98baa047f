// Histogram storage that costs a bucket search and an array increment per observation, rendered through
// the prom-client registry at scrape time.
//
// Why not prom-client's Histogram: its observe() builds and hashes the label object on every call (a few
// allocations and a string join), and the journey observes up to ten histograms per request. Here label
// sets are bound once to a Series and the hot path touches numbers only. The output is the same text
// prom-client writes (buckets, _sum, _count, OpenMetrics exemplars), from the same registry.
import type { Registry } from 'prom-client'

export interface Exemplar { labelSet: Record<string, string>, value: number, timestamp: number }

export class Series {
  readonly labels: Readonly<Record<string, string>>
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array
  readonly exemplars: Array<Exemplar | undefined>
  sum = 0
  count = 0
  private readonly bounds: readonly number[]

  constructor (labels: Record<string, string>, bounds: readonly number[]) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
    this.exemplars = new Array(bounds.length + 1)
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

  /** Observe, and let this observation stand for its bucket as the exemplar (a trace to open). */
  observeWithExemplar (value: number, traceId: string, spanId: string): void {
    const i = this.observe(value)
    this.exemplars[i] = { labelSet: { traceId, spanId }, value, timestamp: Date.now() / 1000 }
  }
}

interface MetricValue { metricName: string, labels: Record<string, string | number>, value: number, exemplar?: Exemplar }

export class FastHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly labelNames: readonly string[]
  readonly buckets: readonly number[]
  private readonly all = new Map<string, Series>()

  constructor (opts: { name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registers: Array<Registry<any>> }) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
    this.buckets = opts.buckets
    for (const r of opts.registers) r.registerMetric(this as never)
  }

  /** The series for these label values (in labelNames order). Bind once and keep it: this is not the hot path. */
  series (...values: string[]): Series {
    const key = values.join('\u0000')
    let s = this.all.get(key)
    if (s === undefined) {
      const labels: Record<string, string> = {}
      this.labelNames.forEach((n, i) => { labels[n] = values[i] ?? '' })
      s = new Series(labels, this.buckets)
      this.all.set(key, s)
    }
    return s
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: MetricValue[] }> {
    const values: MetricValue[] = []
    for (const s of this.all.values()) {
      let cumulative = 0
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += s.counts[i]!
        const v: MetricValue = { metricName: `${this.name}_bucket`, labels: { ...s.labels, le: i < this.buckets.length ? this.buckets[i]! : '+Inf' }, value: cumulative }
        const ex = s.exemplars[i]
        if (ex !== undefined) v.exemplar = ex
        values.push(v)
      }
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void { this.all.clear() }
}
