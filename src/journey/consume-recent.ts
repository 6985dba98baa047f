// The recent-requests view: a bounded ring of finished records' stage timelines and a one-minute window
// of stage durations for percentiles, behind the built-in /journey page. A consumer of the same records
// the spans and metrics come from, never a second measurement. Memory is bounded whatever the rate.
import { ownedBy, type ConnectionRecord, type JourneyOwner, type RequestRecord } from './records.ts'
import { channels } from './publish.ts'
import { tableOf, timelineOf } from './timeline.ts'
import { gapLabel, SERVER_GAPS, STAGES, type ServerGap, type Stage } from './stages.ts'
import { toEpochMs } from './clock.ts'
import { tcpInfoUnavailable } from './tcp-info.ts'

/** Rows of the percentile table besides the stages: the server's time between them (docs/stages.md, Gaps). */
export type PageGap = `gap: ${ServerGap}`
const PAGE_GAPS = SERVER_GAPS.map(gapLabel) as PageGap[]

export interface RecentRequest {
  id: number
  /** Epoch ms of the request span's start. */
  at: number
  method: string
  route: string
  status: number
  scheme: string
  aborted: boolean
  durationMs: number
  connectionId: number
  requestIndex: number
  traceId: string | undefined
  /** Offsets from `at` and durations, in ms, one per stage seen, in journey order. */
  stages: Array<{ stage: Stage, startMs: number, durationMs: number }>
}

export interface StageStats { stage: Stage | PageGap, count: number, p50: number, p95: number, p99: number, spark: number[] }

export interface Snapshot {
  now: number
  recent: RecentRequest[]
  slowest: RecentRequest[]
  stages: StageStats[]
  connections: {
    active: number, acceptedPerSecond: number, tlsFull: number, tlsResumed: number, tlsFailed: number
    /** TCP_INFO at accept over the last minute (ms); undefined when not measured (no addon, not Linux). */
    kernelWait: { p50: number, p99: number, count: number } | undefined
  }
}

export interface RecentOptions {
  /** Requests kept for the waterfall list. */
  capacity?: number
  /** Stage samples kept per stage for the one-minute percentiles. */
  samplesPerStage?: number
  windowMs?: number
  /** Only this journey's records (records.ts); every journey's without it. */
  owner?: JourneyOwner | undefined
}

export interface RecentConsumer {
  snapshot: (sinceId?: number) => Snapshot
  close: () => void
}

/** A fixed-size ring of (time, value) pairs: old samples are overwritten, never accumulated. */
class SampleRing {
  readonly at: Float64Array
  readonly value: Float64Array
  private next = 0
  constructor (size: number) {
    this.at = new Float64Array(size).fill(-Infinity)
    this.value = new Float64Array(size)
  }

  push (at: number, value: number): void {
    this.at[this.next] = at
    this.value[this.next] = value
    this.next = (this.next + 1) % this.at.length
  }

  since (from: number): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (let i = 0; i < this.at.length; i++) if (this.at[i]! >= from) out.push([this.at[i]!, this.value[i]!])
    return out
  }
}

export function quantile (sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

export function createRecentConsumer (opts: RecentOptions = {}): RecentConsumer {
  const { owner } = opts
  const capacity = opts.capacity ?? 200
  const windowMs = opts.windowMs ?? 60_000
  // The finished records themselves, in a circular buffer: nothing is allocated per request here; the
  // page's view objects are built once a second, at snapshot time.
  const ring: Array<{ id: number, rec: RequestRecord } | undefined> = new Array(capacity)
  let head = 0
  const samples = new Map(STAGES.map(s => [s, new SampleRing(opts.samplesPerStage ?? 5000)]))
  // Accepted connections per second over the last 10 s: ten counters, not one entry per connection.
  const acceptCount = new Float64Array(10)
  const acceptSecond = new Float64Array(10).fill(-1)
  const kernelWaits = new SampleRing(opts.samplesPerStage ?? 5000)
  let nextId = 1
  let active = 0
  let tlsFull = 0
  let tlsResumed = 0
  let tlsFailed = 0

  const sampleRings = STAGES.map(s => samples.get(s)!)
  // Hooks for every request; pipelined only for the responses that waited (their count says how many did).
  const gapRings = Object.fromEntries(PAGE_GAPS.map(g => [g, new SampleRing(opts.samplesPerStage ?? 5000)])) as Record<PageGap, SampleRing>

  // Per request the rings take numbers only (the shared walk, tableOf); a record's timeline objects are
  // built when the page shows it (view), at most once a second for the newest `capacity` records.
  function onRequest (message: unknown): void {
    const rec = message as RequestRecord
    if (!ownedBy(rec.conn, owner)) return
    const t = tableOf(rec)
    const slot = ring[head]
    if (slot === undefined) ring[head] = { id: nextId++, rec }
    else { slot.id = nextId++; slot.rec = rec }
    head = (head + 1) % capacity
    const end = toEpochMs(t.end)
    for (let k = 0; k < t.count; k++) sampleRings[t.index[k]!]!.push(end, t.to[k]! - t.from[k]!)
    gapRings['gap: hooks'].push(end, t.hooksMs)
    if (t.pipelinedMs > 0) gapRings['gap: pipelined'].push(end, t.pipelinedMs)
  }

  function view (id: number, rec: RequestRecord): RecentRequest {
    const tl = timelineOf(rec)
    return {
      id,
      at: toEpochMs(tl.start),
      method: rec.method,
      route: rec.route,
      status: rec.status,
      scheme: rec.scheme,
      aborted: rec.aborted,
      durationMs: tl.end - tl.start,
      connectionId: rec.conn.id,
      requestIndex: rec.index,
      traceId: rec.keptBy === undefined ? undefined : rec.traceId,
      stages: tl.stages.map(s => ({ stage: s.stage, startMs: s.start - tl.start, durationMs: s.end - s.start }))
    }
  }

  /** Newest first. */
  function newest (): RecentRequest[] {
    const out: RecentRequest[] = []
    for (let k = 1; k <= capacity; k++) {
      const slot = ring[(head - k + capacity) % capacity]
      if (slot === undefined) break
      out.push(view(slot.id, slot.rec))
    }
    return out
  }

  function onOpen (message: unknown): void {
    if (!ownedBy(message as ConnectionRecord, owner)) return
    const k = (message as ConnectionRecord).kernel
    if (k !== undefined) kernelWaits.push(Date.now(), k.lastAckRecvMs)
    active++
    const sec = Math.floor(Date.now() / 1000)
    const i = sec % 10
    if (acceptSecond[i] !== sec) { acceptSecond[i] = sec; acceptCount[i] = 0 }
    acceptCount[i]!++
  }
  function onTls (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, owner)) return
    if (conn.tlsFailure !== undefined) tlsFailed++
    else if (conn.tlsResumed) tlsResumed++
    else tlsFull++
  }
  function onClose (message: unknown): void { if (ownedBy(message as ConnectionRecord, owner)) active-- }

  function acceptedPerSecond (sec: number): number {
    let n = 0
    // The ten whole seconds before this one.
    for (let i = 0; i < 10; i++) if (acceptSecond[i]! >= sec - 10 && acceptSecond[i]! < sec) n += acceptCount[i]!
    return n / 10
  }

  function kernelWaitStats (from: number): Snapshot['connections']['kernelWait'] {
    if (tcpInfoUnavailable !== undefined) return undefined
    const sorted = kernelWaits.since(from).map(w => w[1]).sort((a, b) => a - b)
    return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), count: sorted.length }
  }

  channels.request.subscribe(onRequest)
  channels.connectionOpen.subscribe(onOpen)
  channels.connectionTls.subscribe(onTls)
  channels.connectionClose.subscribe(onClose)

  return {
    snapshot (sinceId = 0) {
      const now = Date.now()
      const from = now - windowMs
      const stages: StageStats[] = []
      for (const stage of [...STAGES, ...PAGE_GAPS]) {
        const window = (stage in gapRings ? gapRings[stage as PageGap] : samples.get(stage as Stage)!).since(from)
        if (window.length === 0) continue
        const sorted = window.map(w => w[1]).sort((a, b) => a - b)
        // Twelve 5-second buckets of p95, oldest first: the sparkline.
        const spark = Array.from({ length: 12 }, (_, i) => {
          const lo = from + i * (windowMs / 12)
          const bucket = window.filter(w => w[0] >= lo && w[0] < lo + windowMs / 12).map(w => w[1]).sort((a, b) => a - b)
          return bucket.length === 0 ? 0 : quantile(bucket, 0.95)
        })
        stages.push({ stage, count: sorted.length, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99), spark })
      }
      const all = newest()
      const lastMinute = all.filter(r => r.at >= from)
      return {
        now,
        recent: all.filter(r => r.id > sinceId),
        slowest: [...lastMinute].sort((a, b) => b.durationMs - a.durationMs).slice(0, 5),
        stages,
        connections: {
          active,
          acceptedPerSecond: acceptedPerSecond(Math.floor(now / 1000)),
          tlsFull,
          tlsResumed,
          tlsFailed,
          kernelWait: kernelWaitStats(from)
        }
      }
    },
    close () {
      channels.request.unsubscribe(onRequest)
      channels.connectionOpen.unsubscribe(onOpen)
      channels.connectionTls.unsubscribe(onTls)
      channels.connectionClose.unsubscribe(onClose)
    }
  }
}
