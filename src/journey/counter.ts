// Counter storage with label sets bound once, rendered through the prom-client registry at scrape time:
// the counter's twin of histogram.ts.
//
// Why not prom-client's Counter: its inc() validates and hashes the label object on every call, and the
// journey counts every connection twice (accepted, closed). On a load of one request per connection —
// clients without keep-alive, health checks, a proxy that does not pool — that was ≈ 1.5 µs a connection,
// and the connection histograms' label hashing ≈ 4 µs more (bench/README.md, "A new connection per
// request"). Here the hot path adds to a number.
import { bindSeries } from './histogram.ts'
import type { MetricsRegistry } from './metrics-registry.ts'

export class CounterSeries {
  readonly labels: Readonly<Record<string, string>>
  value = 0

  constructor (labels: Record<string, string>) {
    this.labels = labels
  }

  inc (by = 1): void {
    this.value += by
  }
}

interface CounterValue { labels: Readonly<Record<string, string>>, value: number }
interface CounterData { name: string, help: string, type: string, aggregator: string, values: CounterValue[] }

export class FastCounter {
  readonly type = 'counter'
  readonly aggregator = 'sum'
  // Not readonly: in the OpenMetrics format prom-client's registry renames a counter in place (it drops
  // `_total` from the family's name and adds it to each sample's), as it does its own counters.
  name: string
  readonly help: string
  readonly labelNames: readonly string[]
  private readonly all = new Map<string, CounterSeries>()

  constructor (opts: { name: string, help: string, labelNames: readonly string[], registers: MetricsRegistry[] }) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
    for (const r of opts.registers) r.registerMetric(this as never)
  }

  /**
   * The series for these label values (in labelNames order), created at 0: bind it once and keep it for a
   * counter on the hot path. A series exists from its first binding, so a counter bound ahead of its first
   * event is exported at 0 and that event is an increase `rate()` sees.
   */
  series (...values: string[]): CounterSeries {
    return bindSeries(this.all, this.labelNames, values, labels => new CounterSeries(labels))
  }

  /** The registry's text path and its JSON one (getMetricsAsJSON(), prom-client's cluster aggregation) alike. */
  async get (): Promise<CounterData> {
    const values: CounterValue[] = []
    for (const s of this.all.values()) values.push({ labels: s.labels, value: s.value })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** registry.resetMetrics(): every series back to 0, in place, so the series callers have bound still count where scrapes look. */
  reset (): void {
    for (const s of this.all.values()) s.value = 0
  }
}
