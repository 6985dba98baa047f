// Pure timeline maths: turn a request record's marks into ordered stage intervals.
// Spans, metrics and the tests all use this one function, so they cannot disagree.
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
   * start, which on a TLS connection is never before the handshake's end; requestAt without parser marks.
   */
  requestStart: number
  stages: Interval[]
  /** Time inside [start, end] covered by no stage: waiting for the client's first byte, other plugins' hooks. */
  gapMs: number
  /** Of gapMs: from connection ready (accepted or TLS done) to the first byte of the first request. */
  idleBeforeRequestMs: number
  /** Of gapMs: the response waited for earlier responses on its connection to finish (HTTP pipelining). */
  pipelinedMs: number
  /** The rest of gapMs: the server's own time between stages (other plugins' hooks, a not-found handler). */
  hooksMs: number
}

type Marks = Pick<RequestRecord,
  'acceptAt' | 'acceptedAt' | 'secureAt' | 'beginAt' | 'decryptStartAt' | 'headersAt' | 'requestAt' | 'decodeStartAt' |
  'decodeEndAt' | 'handlerStartAt' | 'handlerEndAt' | 'serializeEndAt' | 'writeStartAt' | 'finishAt' | 'endAt'>

const seen = (t: number): boolean => !Number.isNaN(t)

/** The record's timeline, built once and shared by every consumer of the finished record. */
export function timelineOf (rec: Marks & { timeline: Timeline | undefined }): Timeline {
  return rec.timeline ??= buildTimeline(rec)
}

/**
 * Pushes one stage. A stage whose end event never came (an error reply skipped the rest of its hooks, or
 * the client left) ends at the first later event that did happen (`next1`, `next2`, else the request's
 * end), so stages never overlap; it is marked cut. A plain function rather than a closure: this runs for
 * every request, and a per-call closure and `next` array were a measurable share of its cost.
 */
function push (stages: Interval[], index: number, s: number, e: number, end: number, next1 = NaN, next2 = NaN): void {
  if (s !== s) return // NaN: the stage never started
  const stage = STAGES[index]!
  if (e === e) {
    stages.push({ stage, index, start: s, end: e, cut: false })
    return
  }
  const next = next1 === next1 ? next1 : next2 === next2 ? next2 : end
  stages.push({ stage, index, start: s, end: next > s ? next : s, cut: true })
}

// Each stage's index in STAGES, read as constant properties at push's call sites.
const I = Object.freeze(Object.fromEntries(STAGES.map((s, i) => [s, i]))) as Readonly<Record<Stage, number>>

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

export function buildTimeline (m: Marks): Timeline {
  const end = seen(m.finishAt) ? m.finishAt : m.endAt
  const stages: Interval[] = []
  push(stages, I.accept, m.acceptAt, m.acceptedAt, end)
  if (seen(m.secureAt)) push(stages, I.tls, m.acceptedAt, m.secureAt, end)
  // With TLS 1.3 the first request often rides in the same packet as the handshake's last message, so
  // its ciphertext (fine mode) arrives before the handshake ends: it cannot be read as a request sooner.
  const readStart = seen(m.secureAt) && seen(m.beginAt) ? Math.max(m.beginAt, m.secureAt) : m.beginAt
  if (seen(m.decryptStartAt)) {
    // Fine mode on TLS: bytes arriving, then the last record's decryption, then parsing.
    const decryptStart = Math.max(m.decryptStartAt, readStart)
    push(stages, I.read, readStart, decryptStart, end)
    push(stages, I.decrypt, decryptStart, m.headersAt, end)
  } else {
    push(stages, I.read, readStart, m.headersAt, end)
  }
  push(stages, I.parse, m.headersAt, m.requestAt, end)
  push(stages, I.decode, m.decodeStartAt, m.decodeEndAt, end, m.handlerStartAt, m.handlerEndAt)
  if (handlerWroteResponse(m)) {
    push(stages, I.handler, m.handlerStartAt, m.finishAt, end)
  } else {
    push(stages, I.handler, m.handlerStartAt, m.handlerEndAt, end)
    push(stages, I.serialize, m.handlerEndAt, m.serializeEndAt, end)
    // A response held back behind an earlier one starts writing when it gets the socket; one that never
    // got it (the connection closed first) wrote nothing.
    push(stages, I.write, m.writeStartAt, m.finishAt, end)
  }

  const first = stages[0]
  // Without parser marks the request object is the first thing seen; hooks before decode are a gap then.
  const start = first === undefined ? m.requestAt : Math.min(first.start, seen(m.requestAt) ? m.requestAt : Infinity)
  let covered = 0
  for (const s of stages) covered += s.end - s.start
  const ready = seen(m.secureAt) ? m.secureAt : m.acceptedAt
  const idle = seen(ready) && seen(readStart) ? Math.max(0, readStart - ready) : 0
  const held = seen(m.serializeEndAt) ? (seen(m.writeStartAt) ? m.writeStartAt : end) - m.serializeEndAt : 0
  const gapMs = Math.max(0, end - start - covered)
  const pipelinedMs = Math.max(0, held)
  const requestStart = seen(readStart) ? readStart : m.requestAt
  return { start, end, requestStart, stages, gapMs, idleBeforeRequestMs: idle, pipelinedMs, hooksMs: Math.max(0, gapMs - idle - pipelinedMs) }
}

/** What a log line can carry of a finished request: the numbers its span and histograms have, in ms. */
export interface JourneySummary {
  /** http.server.request.duration: from the read stage's start to the last byte handed to the kernel. */
  ms: number
  /** Each stage the request had, in journey order. */
  stages: Partial<Record<Stage, number>>
  /** The server's time between stages (other plugins' hooks) and a pipelined response's wait. */
  hooksMs: number
  pipelinedMs: number
}

const roundUs = (ms: number): number => Math.round(ms * 1000) / 1000

/**
 * A request's journey for its log line, or undefined while the request is still running (its record is
 * finished when its response's last byte is handed to the kernel, or when it is cut off).
 */
export function summarize (rec: Marks & { timeline: Timeline | undefined }): JourneySummary | undefined {
  if (Number.isNaN(rec.endAt)) return undefined
  const tl = timelineOf(rec)
  const stages: Partial<Record<Stage, number>> = {}
  for (const s of tl.stages) stages[s.stage] = roundUs(s.end - s.start)
  return { ms: roundUs(tl.end - tl.requestStart), stages, hooksMs: roundUs(tl.hooksMs), pipelinedMs: roundUs(tl.pipelinedMs) }
}
