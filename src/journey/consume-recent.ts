// The recent-requests view: a bounded ring of finished records' stage timelines and a one-minute window
// of stage durations for percentiles, behind the built-in /journey page. A consumer of the same records
// the spans and metrics come from, never a second measurement. Memory is bounded whatever the rate: the
// minute is twelve 5-second slots, each counting every request's stage durations in log-linear bins
// (log-bins.ts) and keeping its five slowest requests, so nothing in the window depends on how many
// requests came.
import { latestError, ownedBy, type ConnectionRecord, type DroppedConnection, type JourneyOwner, type RequestRecord } from './records.ts'
import { subscribe } from './publish.ts'
import { kernelWaitsOf, markIn, slownessMs, syncPartOf, tableOf, timelineOf } from './timeline.ts'
import { gapLabel, SERVER_GAPS, STAGES, type ServerGap, type Stage } from './stages.ts'
import { followWallClock, now as monotonicNow, toEpochMs } from './clock.ts'
import { tcpInfoUnavailable } from './tcp-info.ts'
import { BINS, binOf, quantileOfBins } from './log-bins.ts'
import { urlPath } from './url-path.ts'

/** Rows of the percentile table besides the stages: the server's time between them (docs/stages.md, Gaps). */
type PageGap = `gap: ${ServerGap}`
const PAGE_GAPS = SERVER_GAPS.map(gapLabel) as PageGap[]

export interface RecentRequest {
  id: number
  /** Epoch ms of the request span's start. */
  at: number
  method: string
  route: string
  /** The path it asked for, without the query (urlPath); undefined for a CONNECT. */
  path: string | undefined
  status: number
  scheme: string
  /** An HTTP/2 stream (no read stage: Node reads HTTP/2 frames natively). */
  http2: boolean
  aborted: boolean
  /** Aborted: which side closed the connection under it, when it closed (records.ts). */
  abortedBy: 'client' | 'server' | undefined
  /** The waterfall's length: from accept on a connection's first request, as its trace's root span. */
  durationMs: number
  /** From the read stage's start, as the log line's `ms` and http_server_request_duration_seconds count it. */
  requestMs: number
  connectionId: number
  requestIndex: number
  traceId: string | undefined
  /** A streamed response some of whose writes the kernel could not take at once: journey.write.backpressure. */
  backpressure: boolean | undefined
  /** Traced requests with large responses: what the kernel still held unacknowledged when write ended (journey.write.unacked_bytes). */
  unackedBytes: number | undefined
  /** Traced requests: how far into decode the body had been read to its end (journey.decode.body_received_ms). */
  bodyReceivedMs: number | undefined
  /** Traced requests: how far into decode that body had been parsed, validation following (journey.decode.body_parsed_ms). */
  bodyParsedMs: number | undefined
  /** Traced requests: how much of the handler stage was its synchronous part (journey.handler.sync_ms). */
  handlerSyncMs: number | undefined
  /** A connection's first request, with the TCP_INFO addon: its wait in the kernel's accept queue (journey.accept.kernel_wait_ms). */
  acceptKernelWaitMs: number | undefined
  /** Traced requests, with the addon: its bytes' wait in the kernel's receive queue before the read stage (journey.read.kernel_wait_ms). */
  readKernelWaitMs: number | undefined
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
    /** Requests taken and not yet finished, on the open connections, at the snapshot (http_server_active_requests's sum). */
    inFlight: number
    /** Since start, failed handshakes by reason (journey_tls_handshake_failures_total's): a client refusing the certificate, plain HTTP, … */
    tlsFailures: Record<string, number>
    /** Since start: connections closed unserved at the server's maxConnections (publish.ts). */
    dropped: number
    /** Since start, by reason (journey_connection_errors_total's, a bounded set): malformed input, timeouts, … */
    errors: Record<string, number>
    /** TCP_INFO at accept over the last minute (ms); undefined when not measured (no addon, not Linux). */
    kernelWait: { p50: number, p99: number, count: number } | undefined
    /**
     * TCP_INFO before read over the last minute (journey_read_kernel_wait_seconds's, ms), of the requests that
     * read it (traced ones; every one in fine mode, but over TLS): how long their bytes sat in the receive
     * queue; undefined when not measured (no addon).
     */
    readKernelWait: { p50: number, p99: number, count: number } | undefined
  }
}

export interface RecentOptions {
  /** Requests kept for the waterfall list. */
  capacity?: number
  /** The window of the percentiles and the slowest list, in twelve slots. */
  windowMs?: number
  /** Only this journey's records (records.ts); every journey's without it. */
  owner?: JourneyOwner | undefined
}

export interface RecentConsumer {
  snapshot: (sinceId?: number) => Snapshot
  close: () => void
}

const SLOTS = 12
const SLOWEST = 5
/** Durations are binned in 1/16 µs (exact below 2 µs, ≈ 3 % above; up to 268 s), TCP_INFO waits in whole ms. */
const UNITS_PER_MS = 16_000
const ROWS = [...STAGES, ...PAGE_GAPS]
const HOOKS_ROW = STAGES.length + PAGE_GAPS.indexOf('gap: hooks')
const PIPELINED_ROW = STAGES.length + PAGE_GAPS.indexOf('gap: pipelined')
const ERROR_HANDLER_ROW = STAGES.length + PAGE_GAPS.indexOf('gap: error_handler')
const KERNEL_ROW = ROWS.length
const READ_KERNEL_ROW = ROWS.length + 1
const ROW_BINS = (ROWS.length + 2) * BINS

interface Slow { id: number, rec: RequestRecord, ms: number }

export function createRecentConsumer (opts: RecentOptions = {}): RecentConsumer {
  const { owner } = opts
  const capacity = opts.capacity ?? 200
  const windowMs = opts.windowMs ?? 60_000
  const slotMs = windowMs / SLOTS
  // The finished records themselves, in a circular buffer: nothing is allocated per request here (a slot's
  // slowest list takes an entry only for one of its five slowest); the page's view objects are built once a
  // second, at snapshot time.
  const ring: Array<{ id: number, rec: RequestRecord } | undefined> = new Array(capacity)
  let head = 0
  // Per slot: which slotMs-long interval of the monotonic clock it holds, its bins (a row per stage, gap
  // and the two kernel waits: ≈ 24 KB a slot) and its slowest requests (held until the slot is reused).
  const slotOf = new Float64Array(SLOTS).fill(-1)
  const bins = new Uint32Array(SLOTS * ROW_BINS)
  const slowest: Slow[][] = Array.from({ length: SLOTS }, () => [])
  // Accepted connections per second over the last 10 s: ten counters, not one entry per connection. Seconds
  // of the monotonic clock, as the slots are, so a stepped wall clock neither hides nor repeats any.
  const acceptCount = new Float64Array(10)
  const acceptSecond = new Float64Array(10).fill(-1)
  const watchedFrom = monotonicNow()
  let nextId = 1
  // The open connections themselves, not a count: their records in flight are counted at each snapshot.
  const open = new Set<ConnectionRecord>()
  let tlsFull = 0
  let tlsResumed = 0
  const tlsFailures: Record<string, number> = {}
  let dropped = 0
  const errors: Record<string, number> = {}

  // Slots are intervals of the monotonic clock (clock.ts), the one the records' marks are on: the wall clock
  // can be stepped, and a slot must not be reused early or late because of it.
  /** The slot for a monotonic time, emptied first if it held an older interval; -1 if the time is too old. */
  function slotAt (mark: number): number {
    const n = Math.floor(mark / slotMs)
    const s = n % SLOTS
    if (slotOf[s] !== n) {
      if (slotOf[s]! > n) return -1
      slotOf[s] = n
      bins.fill(0, s * ROW_BINS, (s + 1) * ROW_BINS)
      slowest[s]!.length = 0
    }
    return s
  }

  function keepIfSlow (s: number, id: number, rec: RequestRecord, ms: number): void {
    const list = slowest[s]!
    if (list.length === SLOWEST && ms <= list[SLOWEST - 1]!.ms) return
    if (list.length === SLOWEST) list.pop()
    let i = list.length
    while (i > 0 && list[i - 1]!.ms < ms) i--
    list.splice(i, 0, { id, rec, ms })
  }

  // Per request the bins take numbers only (the shared walk, tableOf); a record's timeline objects are
  // built when the page shows it (view), at most once a second for the newest `capacity` records.
  function onRequest (message: unknown): void {
    const rec = message as RequestRecord
    if (!ownedBy(rec.conn, owner)) return
    const t = tableOf(rec)
    const id = nextId++
    const slot = ring[head]
    if (slot === undefined) ring[head] = { id, rec }
    else { slot.id = id; slot.rec = rec }
    head = (head + 1) % capacity
    const s = slotAt(t.end)
    if (s < 0) return
    const base = s * ROW_BINS
    for (let k = 0; k < t.count; k++) bins[base + t.index[k]! * BINS + binOf((t.to[k]! - t.from[k]!) * UNITS_PER_MS)]!++
    bins[base + HOOKS_ROW * BINS + binOf(t.hooksMs * UNITS_PER_MS)]!++
    if (t.pipelinedMs > 0) bins[base + PIPELINED_ROW * BINS + binOf(t.pipelinedMs * UNITS_PER_MS)]!++
    if (t.errorHandlerMs > 0) bins[base + ERROR_HANDLER_ROW * BINS + binOf(t.errorHandlerMs * UNITS_PER_MS)]!++
    if (!Number.isNaN(rec.kernelReadWaitMs)) bins[base + READ_KERNEL_ROW * BINS + binOf(rec.kernelReadWaitMs)]!++
    keepIfSlow(s, id, rec, slownessMs(t))
  }

  function view (id: number, rec: RequestRecord): RecentRequest {
    const tl = timelineOf(rec)
    const decode = tl.stages.find(s => s.stage === 'decode')
    const handler = tl.stages.find(s => s.stage === 'handler')
    const kernel = kernelWaitsOf(rec, tl.stages[0]?.stage)
    return {
      id,
      at: toEpochMs(tl.start),
      method: rec.method,
      route: rec.route,
      path: urlPath(rec.target),
      status: rec.status,
      scheme: rec.scheme,
      http2: rec.conn.multiplexed,
      aborted: rec.aborted,
      abortedBy: rec.abortedBy,
      durationMs: tl.end - tl.start,
      requestMs: tl.end - tl.requestStart,
      connectionId: rec.conn.id,
      requestIndex: rec.index,
      traceId: rec.keptBy === undefined ? undefined : rec.traceId,
      backpressure: rec.backpressure,
      // Read by the span consumer, which subscribed first (createJourney), for the requests it keeps.
      unackedBytes: Number.isNaN(rec.writeUnackedBytes) ? undefined : rec.writeUnackedBytes,
      bodyReceivedMs: decode === undefined ? undefined : markIn(decode.start, decode.end, rec.bodyEndAt),
      bodyParsedMs: decode === undefined ? undefined : markIn(decode.start, decode.end, rec.bodyParsedAt),
      handlerSyncMs: handler === undefined ? undefined : syncPartOf(handler.start, handler.end, rec.handlerReturnedAt),
      acceptKernelWaitMs: kernel.acceptMs,
      readKernelWaitMs: kernel.readMs,
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

  function inFlight (): number {
    let n = 0
    for (const conn of open) n += conn.inflight.length
    return n
  }

  function onOpen (message: unknown): void {
    if (!ownedBy(message as ConnectionRecord, owner)) return
    const k = (message as ConnectionRecord).kernel
    if (k !== undefined) {
      const s = slotAt(monotonicNow())
      if (s >= 0) bins[s * ROW_BINS + KERNEL_ROW * BINS + binOf(k.lastAckRecvMs)]!++
    }
    open.add(message as ConnectionRecord)
    const sec = Math.floor(monotonicNow() / 1000)
    const i = sec % 10
    if (acceptSecond[i] !== sec) { acceptSecond[i] = sec; acceptCount[i] = 0 }
    acceptCount[i]!++
  }
  function onTls (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, owner)) return
    if (conn.tlsFailure !== undefined) tlsFailures[conn.tlsFailure] = (tlsFailures[conn.tlsFailure] ?? 0) + 1
    else if (conn.tlsResumed) tlsResumed++
    else tlsFull++
  }
  function onClose (message: unknown): void { open.delete(message as ConnectionRecord) }
  function onDrop (message: unknown): void { if (ownedBy(message as DroppedConnection, owner)) dropped++ }
  function onError (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, owner)) return
    const reason = latestError(conn)
    errors[reason] = (errors[reason] ?? 0) + 1
  }

  function acceptedPerSecond (sec: number): number {
    let n = 0
    // The ten whole seconds before this one.
    for (let i = 0; i < 10; i++) if (acceptSecond[i]! >= sec - 10 && acceptSecond[i]! < sec) n += acceptCount[i]!
    // Over the time actually watched: in its first ten seconds the view has not seen ten (dividing by ten
    // read a steady 50 connections/s as 5 after one second). A second at least, so a first burst inside a
    // partly watched second is not read as a rate of thousands.
    return n / Math.max(1, Math.min(10_000, sec * 1000 - watchedFrom) / 1000)
  }

  /** The slots of the window ending at monotonic time `at`, oldest first (-1 where a slot saw nothing in its interval). */
  function windowSlots (at: number): number[] {
    const last = Math.floor(at / slotMs)
    return Array.from({ length: SLOTS }, (_, i) => {
      const n = last - SLOTS + 1 + i
      return slotOf[n % SLOTS] === n ? n % SLOTS : -1
    })
  }

  /** One row's counts summed over the given slots, and their total. */
  function rowOver (slots: number[], row: number, into: Float64Array): number {
    into.fill(0)
    let total = 0
    for (const s of slots) {
      if (s < 0) continue
      const base = s * ROW_BINS + row * BINS
      for (let b = 0; b < BINS; b++) {
        const c = bins[base + b]!
        into[b]! += c
        total += c
      }
    }
    return total
  }

  const unsubscribe = subscribe({
    request: onRequest, connectionOpen: onOpen, connectionTls: onTls,
    connectionError: onError, connectionClose: onClose, connectionDrop: onDrop
  })

  return {
    snapshot (sinceId = 0) {
      const now = Date.now()
      const mark = monotonicNow()
      followWallClock(mark) // the page's times, like the spans', follow a stepped wall clock
      const live = windowSlots(mark)
      const merged = new Float64Array(BINS)
      const stages: StageStats[] = []
      ROWS.forEach((stage, row) => {
        const count = rowOver(live, row, merged)
        if (count === 0) return
        const ms = (q: number): number => quantileOfBins(merged, count, q) / UNITS_PER_MS
        const p50 = ms(0.5)
        const p95 = ms(0.95)
        const p99 = ms(0.99)
        // The p95 of each 5-second slot, oldest first: the sparkline.
        const spark = live.map(s => {
          const n = s < 0 ? 0 : rowOver([s], row, merged)
          return n === 0 ? 0 : quantileOfBins(merged, n, 0.95) / UNITS_PER_MS
        })
        stages.push({ stage, count, p50, p95, p99, spark })
      })
      const kernelRow = (row: number): { p50: number, p99: number, count: number } | undefined => {
        if (tcpInfoUnavailable !== undefined) return undefined
        const count = rowOver(live, row, merged)
        return { p50: quantileOfBins(merged, count, 0.5), p99: quantileOfBins(merged, count, 0.99), count }
      }
      const slow = live.flatMap(s => s < 0 ? [] : slowest[s]!).sort((a, b) => b.ms - a.ms).slice(0, SLOWEST)
      return {
        now,
        recent: newest().filter(r => r.id > sinceId),
        slowest: slow.map(x => view(x.id, x.rec)),
        stages,
        connections: {
          active: open.size,
          inFlight: inFlight(),
          acceptedPerSecond: acceptedPerSecond(Math.floor(mark / 1000)),
          tlsFull,
          tlsResumed,
          tlsFailed: Object.values(tlsFailures).reduce((a, b) => a + b, 0),
          tlsFailures: { ...tlsFailures },
          dropped,
          errors: { ...errors },
          kernelWait: kernelRow(KERNEL_ROW),
          readKernelWait: kernelRow(READ_KERNEL_ROW)
        }
      }
    },
    close () {
      unsubscribe()
      // No close is seen from here on: holding the connections would keep counting them open, and their records.
      open.clear()
    }
  }
}
