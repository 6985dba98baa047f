// Timeline maths: turn a request record's marks into ordered stage intervals (walkTimeline).
// Spans, metrics, the page, log lines and the tests all use this one function, so they cannot disagree;
// the consumers of a finished record share one walk of it (tableOf).
import { STAGES, type Stage } from './stages.ts'
import type { RequestRecord } from './records.ts'

export interface Interval {
  stage: Stage
  /** The stage's position in STAGES: consumers index arrays with it rather than look the name up. */
  index: number
  start: number
  end: number
  /** The stage began but the request ended (client abort, error) before its end event. */
  cut: boolean
}

export interface Timeline {
  start: number
  end: number
  /**
   * Where the request itself starts (http.server.request.duration runs from here to end): its read stage's
   * start, which on a TLS connection is never before the handshake's end; on HTTP/2, where no read is seen,
   * its parse stage's; requestAt without either.
   */
  requestStart: number
  stages: Interval[]
  /** Time inside [start, end] covered by no stage: waiting for the client's first byte, other plugins' hooks. */
  gapMs: number
  /**
   * Of gapMs: from connection ready (accepted or TLS done) to the first byte of the first request (on HTTP/2
   * to its decoded headers: the connection preface, settings and the request's frames arriving; without
   * parser marks to its request object, its unseen read and parse included).
   */
  idleBeforeRequestMs: number
  /** Of gapMs: the response waited for earlier responses on its connection to finish (HTTP pipelining). */
  pipelinedMs: number
  /** Of gapMs: from an error to the next stage (Fastify's error handling: your setErrorHandler, or its default). */
  errorHandlerMs: number
  /** The rest of gapMs: the server's own time between stages (other plugins' hooks, a not-found handler). */
  hooksMs: number
}

export type Marks = Pick<RequestRecord,
  'acceptAt' | 'acceptedAt' | 'secureAt' | 'beginAt' | 'decryptStartAt' | 'headersAt' | 'requestAt' | 'decodeStartAt' |
  'decodeEndAt' | 'handlerStartAt' | 'handlerEndAt' | 'serializeEndAt' | 'writeStartAt' | 'finishAt' | 'endAt' | 'errorAt'>

const seen = (t: number): boolean => !Number.isNaN(t)

/** A finished record's timeline as objects, built once and shared by every consumer that needs them. */
export function timelineOf (rec: Marks & { timeline: Timeline | undefined }): Timeline {
  return rec.timeline ??= timelineFrom(tableOf(rec))
}

// Each stage's index in STAGES, read as constant properties at push's call sites.
const I = Object.freeze(Object.fromEntries(STAGES.map((s, i) => [s, i]))) as Readonly<Record<Stage, number>>

/** The most stages a timeline can have: every stage once. */
const MAX_STAGES = STAGES.length

/**
 * A timeline as numbers in reusable arrays: what walkTimeline fills and buildTimeline turns into objects.
 * The metrics consumer reads every request's timeline from one of these, so a request nobody traces
 * allocates nothing for it (the objects were ≈ 1 KB a request, a third of what the journey allocated).
 * Its fields mean what Timeline's do.
 */
export class StageTable {
  count = 0
  /** Per stage, in journey order: its position in STAGES, its start and end, whether it was cut. */
  readonly index = new Uint8Array(MAX_STAGES)
  readonly from = new Float64Array(MAX_STAGES)
  readonly to = new Float64Array(MAX_STAGES)
  readonly cut = new Uint8Array(MAX_STAGES)
  start = NaN
  end = NaN
  requestStart = NaN
  gapMs = NaN
  idleBeforeRequestMs = NaN
  pipelinedMs = NaN
  errorHandlerMs = NaN
  hooksMs = NaN
}

/**
 * Adds one stage. A stage running when Fastify took an error (`err`: a body that is not JSON, a failed
 * validation, a handler that threw) ends there, cut: what follows is the error handler's, not the stage's.
 * A stage whose end event never came for another reason (the client left) ends at the first later event
 * that did happen (`next1`, `next2`, else the request's end), so stages never overlap; it is marked cut
 * too. A plain function rather than a closure: this runs for every request, and a per-call closure and
 * `next` array were a measurable share of its cost.
 */
function push (t: StageTable, index: number, s: number, e: number, end: number, err: number, next1 = NaN, next2 = NaN): void {
  if (s !== s) return // NaN: the stage never started
  const k = t.count++
  t.index[k] = index
  t.from[k] = s
  // `e <= err` is false for a NaN e: a stage that never ended and had an error after its start ends there.
  if (err >= s && !(e <= err)) {
    t.to[k] = err
    t.cut[k] = 1
    return
  }
  if (e === e) {
    t.to[k] = e
    t.cut[k] = 0
    return
  }
  const next = next1 === next1 ? next1 : next2 === next2 ? next2 : end
  t.to[k] = next > s ? next : s
  t.cut[k] = 1
}

/**
 * The most stages a request can end with, known when it starts: the six every request may have, plus
 * accept, tls and decrypt when their marks are already set (they are set before the request exists, or
 * never). buildTimeline never returns more; it returns exactly this many when the request completes.
 */
export function mostStages (m: Pick<Marks, 'acceptAt' | 'secureAt' | 'decryptStartAt'>): number {
  return 6 + (seen(m.acceptAt) ? 1 : 0) + (seen(m.secureAt) ? 1 : 0) + (seen(m.decryptStartAt) ? 1 : 0)
}

/**
 * The response finished without ever passing Fastify's reply (the handler called reply.hijack(), or wrote
 * to reply.raw): its onSend never ran, which would have ended the handler. The handler wrote the response
 * itself, so its stage runs to 'finish', and there is no serialize or write stage of Fastify's to show.
 */
export function handlerWroteResponse (m: Pick<Marks, 'handlerStartAt' | 'handlerEndAt' | 'serializeEndAt' | 'finishAt'>): boolean {
  return seen(m.finishAt) && seen(m.handlerStartAt) && !seen(m.handlerEndAt) && !seen(m.serializeEndAt)
}

/**
 * How far into a stage running from `start` to `end` a mark came — decode's body read to its end
 * (RequestRecord.bodyEndAt) or parsed (bodyParsedAt) —, or undefined when it did not come inside the stage:
 * never (NaN: no body, one the handler reads itself), or after the stage was cut off. Plain numbers, so the
 * per-request log summary allocates nothing for it.
 */
export function markIn (start: number, end: number, at: number): number | undefined {
  return at >= start && at <= end ? at - start : undefined
}

/**
 * How much of a handler stage running from `start` to `end` was the handler's synchronous part, which ended
 * at `returnedAt` (RequestRecord.handlerReturnedAt): all of it when the handler returned only after its stage
 * had ended (it sent the response itself, synchronously), undefined when unknown (NaN: untraced, or it threw).
 */
export function syncPartOf (start: number, end: number, returnedAt: number): number | undefined {
  return returnedAt >= start ? Math.min(returnedAt, end) - start : undefined
}

/**
 * The record's timeline, written into `t` (overwriting what it held) and returned. The one timeline maths.
 * `end`: where the request ends; given only for a record still running, walked as if it ended there
 * (server-timing.ts, as the response's headers go out).
 */
export function walkTimeline (m: Marks, t: StageTable, end = seen(m.finishAt) ? m.finishAt : m.endAt): StageTable {
  // An error after the request ended (a response stream failing once its last byte was handed over) ends no stage.
  const err = m.errorAt < end ? m.errorAt : NaN
  t.count = 0
  push(t, I.accept, m.acceptAt, m.acceptedAt, end, err)
  if (seen(m.secureAt)) push(t, I.tls, m.acceptedAt, m.secureAt, end, err)
  // With TLS 1.3 the first request often rides in the same packet as the handshake's last message, so
  // its ciphertext (fine mode) arrives before the handshake ends: it cannot be read as a request sooner.
  const readStart = seen(m.secureAt) && seen(m.beginAt) ? Math.max(m.beginAt, m.secureAt) : m.beginAt
  if (seen(m.decryptStartAt)) {
    // Fine mode on TLS: bytes arriving, then the last record's decryption, then parsing.
    const decryptStart = Math.max(m.decryptStartAt, readStart)
    push(t, I.read, readStart, decryptStart, end, err)
    push(t, I.decrypt, decryptStart, m.headersAt, end, err)
  } else {
    push(t, I.read, readStart, m.headersAt, end, err)
  }
  push(t, I.parse, m.headersAt, m.requestAt, end, err)
  push(t, I.decode, m.decodeStartAt, m.decodeEndAt, end, err, m.handlerStartAt, m.handlerEndAt)
  if (handlerWroteResponse(m)) {
    push(t, I.handler, m.handlerStartAt, m.finishAt, end, err)
  } else {
    push(t, I.handler, m.handlerStartAt, m.handlerEndAt, end, err)
    push(t, I.serialize, m.handlerEndAt, m.serializeEndAt, end, err)
    // A response held back behind an earlier one starts writing when it gets the socket; one that never
    // got it (the connection closed first) wrote nothing.
    push(t, I.write, m.writeStartAt, m.finishAt, end, err)
  }

  // Without parser marks the request object is the first thing seen; hooks before decode are a gap then.
  const start = t.count === 0 ? m.requestAt : Math.min(t.from[0]!, seen(m.requestAt) ? m.requestAt : Infinity)
  let covered = 0
  for (let k = 0; k < t.count; k++) covered += t.to[k]! - t.from[k]!
  const ready = seen(m.secureAt) ? m.secureAt : m.acceptedAt
  // Where the request is first seen: its first byte, or on HTTP/2 (no read stage) its decoded headers, or
  // without parser marks its request object — the wait before it is then no hook's, though not all idle.
  const first = seen(readStart) ? readStart : seen(m.headersAt) ? m.headersAt : m.requestAt
  const idle = seen(ready) && seen(first) ? Math.max(0, first - ready) : 0
  const held = seen(m.serializeEndAt) ? (seen(m.writeStartAt) ? m.writeStartAt : end) - m.serializeEndAt : 0
  const gapMs = Math.max(0, end - start - covered)
  const pipelinedMs = Math.max(0, held)
  // The error handler runs from the error to the next stage that starts (serialize, when your error
  // handler sends an object; else the zero serialize of onSend, Fastify having serialized the error itself).
  let errorHandlerMs = 0
  if (err === err) {
    let next = end
    for (let k = 0; k < t.count; k++) if (t.from[k]! >= err && t.from[k]! < next) next = t.from[k]!
    errorHandlerMs = next - err
  }
  t.start = start
  t.end = end
  t.requestStart = first
  t.gapMs = gapMs
  t.idleBeforeRequestMs = idle
  t.pipelinedMs = pipelinedMs
  t.errorHandlerMs = errorHandlerMs
  t.hooksMs = Math.max(0, gapMs - idle - pipelinedMs - errorHandlerMs)
  return t
}

/**
 * How slow a request was, for the keep-slow rule and the page's slowest list: its root span's length less
 * the client's wait before its first byte (journey.gap.before_request_ms). A connection opened ahead of use
 * (a browser's preconnect, a pool warming up) waits there for as long as its client likes; counted, it would
 * keep, and rank first, requests the server answered in a millisecond. Accept and TLS still count.
 */
export const slownessMs = (t: Readonly<Pick<StageTable, 'start' | 'end' | 'idleBeforeRequestMs'>>): number =>
  t.end - t.start - t.idleBeforeRequestMs

const finished = new StageTable()
let walked: Marks | undefined

/**
 * A finished record's timeline as numbers, walked once however many consumers ask. The consumers of a
 * published record run one after another inside the synchronous publish (diagnostics_channel), so the
 * first walks and the others read the same table; the next record published overwrites it. So: only for
 * finished records (whose marks never change again), and read at once, never kept. Walking per consumer
 * cost ≈ 1,200 instructions a request each (callgrind, bench/NOTES.md).
 */
export function tableOf (rec: Marks): StageTable {
  if (walked !== rec) {
    walkTimeline(rec, finished)
    walked = rec
  }
  return finished
}

const scratch = new StageTable()

/** A record's timeline as objects, walked afresh: for records that may still be running (tests, tools). */
export function buildTimeline (m: Marks): Timeline {
  return timelineFrom(walkTimeline(m, scratch))
}

function timelineFrom (t: StageTable): Timeline {
  const stages: Interval[] = new Array(t.count)
  for (let k = 0; k < t.count; k++) {
    const index = t.index[k]!
    stages[k] = { stage: STAGES[index]!, index, start: t.from[k]!, end: t.to[k]!, cut: t.cut[k] === 1 }
  }
  return {
    start: t.start,
    end: t.end,
    requestStart: t.requestStart,
    stages,
    gapMs: t.gapMs,
    idleBeforeRequestMs: t.idleBeforeRequestMs,
    pipelinedMs: t.pipelinedMs,
    errorHandlerMs: t.errorHandlerMs,
    hooksMs: t.hooksMs
  }
}

/** What a log line can carry of a finished request: the numbers its span and histograms have, in ms. */
export interface JourneySummary {
  /** http.server.request.duration: from the read stage's start to the last byte handed to the kernel. */
  ms: number
  /** Each stage the request had, in journey order. */
  stages: Partial<Record<Stage, number>>
  /** The server's time between stages (other plugins' hooks), a pipelined response's wait, error handling. */
  hooksMs: number
  pipelinedMs: number
  errorHandlerMs: number
  /** Traced journeys, a body that ended within decode: how far into decode it had all arrived (journey.decode.body_received_ms). */
  bodyReceivedMs?: number
  /** Traced journeys: how far into decode that body had been parsed; validation follows (journey.decode.body_parsed_ms). */
  bodyParsedMs?: number
  /** Traced journeys: how much of the handler stage was the handler's synchronous part (journey.handler.sync_ms). */
  handlerSyncMs?: number
  /**
   * A connection's first request, with the TCP_INFO addon: how long the kernel had held the connection in its
   * accept queue before the server took it (journey.accept.kernel_wait_ms; whole jiffies). Before the stages.
   */
  acceptKernelWaitMs?: number
  /**
   * Traced journeys (every request in fine mode), with the addon: how long the request's bytes sat in the
   * kernel's receive queue before the server read them (journey.read.kernel_wait_ms; whole ms, true to a jiffy). Before
   * the read stage, so not in `ms`; on a first request, part of what looks like the client's wait.
   */
  readKernelWaitMs?: number
}

/** The kernel's waits a request record carries (TCP_INFO, whole ms), optional so any record type fits. */
export interface KernelWaits {
  /** Before read: NaN when not measured (an untraced request, no addon). */
  kernelReadWaitMs?: number
  /** At accept, on the connection: undefined without the addon. */
  conn?: { kernel: { lastAckRecvMs: number } | undefined }
}

/**
 * The kernel's waits as the log line, the journey page and Server-Timing show them: the accept queue's only
 * for the request that had the accept stage (a connection's first: `firstStage`), the wait before read where
 * it was measured. One place, so the three views cannot disagree on when either is there.
 */
export function kernelWaitsOf (rec: KernelWaits, firstStage: Stage | undefined): { acceptMs: number | undefined, readMs: number | undefined } {
  const read = rec.kernelReadWaitMs
  return {
    acceptMs: firstStage === 'accept' ? rec.conn?.kernel?.lastAckRecvMs : undefined,
    readMs: read === undefined || Number.isNaN(read) ? undefined : read
  }
}

/** What summarize() reads besides the marks, all optional: a record of this package has them. */
export interface SummaryExtras extends KernelWaits {
  bodyEndAt?: number
  bodyParsedAt?: number
  handlerReturnedAt?: number
}

const roundUs = (ms: number): number => Math.round(ms * 1000) / 1000

/**
 * A duration in ms to the nanosecond, the monotonic clock's own resolution: a difference of two doubles
 * otherwise carries float noise into span attributes (0.1995120000001407), which no clock measured.
 */
export const roundNs = (ms: number): number => Math.round(ms * 1e6) / 1e6

/**
 * A request's journey for its log line, or undefined while the request is still running (its record is
 * finished when its response's last byte is handed to the kernel, or when it is cut off).
 */
export function summarize (rec: Marks & SummaryExtras): JourneySummary | undefined {
  if (Number.isNaN(rec.endAt)) return undefined
  // The numbers the consumers already walked: a log line per request needs no span-ready objects.
  const t = tableOf(rec)
  const stages: Partial<Record<Stage, number>> = {}
  let bodyReceivedMs: number | undefined
  let bodyParsedMs: number | undefined
  let handlerSyncMs: number | undefined
  for (let k = 0; k < t.count; k++) {
    const stage = STAGES[t.index[k]!]!
    stages[stage] = roundUs(t.to[k]! - t.from[k]!)
    if (stage === 'decode') {
      if (rec.bodyEndAt !== undefined) bodyReceivedMs = markIn(t.from[k]!, t.to[k]!, rec.bodyEndAt)
      if (rec.bodyParsedAt !== undefined) bodyParsedMs = markIn(t.from[k]!, t.to[k]!, rec.bodyParsedAt)
    } else if (stage === 'handler' && rec.handlerReturnedAt !== undefined) {
      handlerSyncMs = syncPartOf(t.from[k]!, t.to[k]!, rec.handlerReturnedAt)
    }
  }
  const summary: JourneySummary = { ms: roundUs(t.end - t.requestStart), stages, hooksMs: roundUs(t.hooksMs), pipelinedMs: roundUs(t.pipelinedMs), errorHandlerMs: roundUs(t.errorHandlerMs) }
  if (bodyReceivedMs !== undefined) summary.bodyReceivedMs = roundUs(bodyReceivedMs)
  if (bodyParsedMs !== undefined) summary.bodyParsedMs = roundUs(bodyParsedMs)
  if (handlerSyncMs !== undefined) summary.handlerSyncMs = roundUs(handlerSyncMs)
  const kernel = kernelWaitsOf(rec, t.count > 0 ? STAGES[t.index[0]!] : undefined)
  if (kernel.acceptMs !== undefined) summary.acceptKernelWaitMs = kernel.acceptMs
  if (kernel.readMs !== undefined) summary.readKernelWaitMs = kernel.readMs
  return summary
}
