// Delta temporality for the registry bridge (metric-producer.ts). A prom-client registry only knows totals
// since the process started; backends that take deltas (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=
// delta) want what changed since the last push. The SDK converts only its own instruments' data, not a
// producer's, so the bridge keeps each series' last total and subtracts. Pure but for that memory.
import type { HrTime } from '@opentelemetry/api'
import { keyOf, type BridgedMetricData, type HistogramValue, type Point } from './metric-producer.ts'

/** @opentelemetry/sdk-metrics' AggregationTemporality.DELTA (the test holds it equal). */
export const DELTA = 0
// DATA_POINT.HISTOGRAM and .SUM of metric-producer.ts, which imports this module.
const HISTOGRAM = 0
const SUM = 3

type Last = Readonly<{ end: HrTime, value: number | HistogramValue }>

function histogramDelta (cur: HistogramValue, prev: HistogramValue): HistogramValue | undefined {
  const a = cur.buckets
  const b = prev.buckets
  if (a.counts.length !== b.counts.length || a.boundaries.some((x, i) => x !== b.boundaries[i])) return undefined
  const counts = a.counts.map((c, i) => c - b.counts[i]!)
  if (cur.count < prev.count || counts.some(c => c < 0)) return undefined
  return { buckets: { boundaries: a.boundaries, counts }, sum: (cur.sum ?? 0) - (prev.sum ?? 0), count: cur.count - prev.count }
}

/**
 * Turns cumulative collections into deltas, one collection after another: each counter and histogram
 * point becomes what changed since the same series' previous collection, starting where that one ended;
 * a series seen for the first time counts from `processStart`; a total that went down (the registry was
 * reset) starts again from its new total. Points that did not change are left out, as the SDK leaves out
 * series nothing was recorded in; gauges pass as they are. One converter per reader: a collection
 * consumes the change it reports.
 */
export class DeltaConverter {
  private last = new Map<string, Last>()

  convert (metrics: readonly BridgedMetricData[], processStart: HrTime, endTime: HrTime): BridgedMetricData[] {
    const next = new Map<string, Last>()
    const out: BridgedMetricData[] = []
    for (const m of metrics) {
      if (m.dataPointType !== HISTOGRAM && m.dataPointType !== SUM) {
        out.push(m)
        continue
      }
      const points = []
      for (const p of m.dataPoints as Array<Point<number | HistogramValue>>) {
        const key = `${m.descriptor.name}\u0000${keyOf(p.attributes)}`
        const prev = this.last.get(key)
        next.set(key, { end: endTime, value: p.value })
        let value: number | HistogramValue | undefined
        if (prev === undefined) value = p.value
        else if (typeof p.value === 'number') {
          const d = p.value - (prev.value as number)
          value = d === 0 ? undefined : d < 0 ? p.value : d
        } else {
          const d = histogramDelta(p.value, prev.value as HistogramValue)
          value = d === undefined ? p.value : d.count === 0 ? undefined : d
        }
        if (value === undefined) continue
        // After a reset the change began somewhere since the previous collection: its end is the bound we know.
        points.push({ startTime: prev?.end ?? processStart, endTime, attributes: p.attributes, value })
      }
      if (points.length > 0) out.push({ ...m, aggregationTemporality: DELTA, dataPoints: points } as BridgedMetricData)
    }
    this.last = next
    return out
  }
}
