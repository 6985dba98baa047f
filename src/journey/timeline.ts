// Pure timeline maths: turn a request record's marks into ordered stage intervals.
// Spans, metrics and the tests all use this one function, so they cannot disagree.
import type { Stage } from './stages.ts'
import type { RequestRecord } from './records.ts'

export interface Interval {
  stage: Stage
  start: number
  end: number
  /** The stage began but the request ended (client abort, error) before its end event. */
  cut: boolean
}

export interface Timeline {
  start: number
  end: number
  stages: Interval[]
  /** Time inside [start, end] covered by no stage: waiting for the client's first byte, other plugins' hooks. */
  gapMs: number
  /** Of gapMs: from connection ready (accepted or TLS done) to the first byte of the first request. */
  idleBeforeRequestMs: number
}

type Marks = Pick<RequestRecord,
  'acceptAt' | 'acceptedAt' | 'secureAt' | 'beginAt' | 'decryptStartAt' | 'headersAt' | 'requestAt' | 'decodeStartAt' |
  'decodeEndAt' | 'handlerStartAt' | 'handlerEndAt' | 'serializeEndAt' | 'finishAt' | 'endAt'>

const seen = (t: number): boolean => !Number.isNaN(t)

/** The record's timeline, built once and shared by every consumer of the finished record. */
export function timelineOf (rec: Marks & { timeline: Timeline | undefined }): Timeline {
  return rec.timeline ??= buildTimeline(rec)
}

export function buildTimeline (m: Marks): Timeline {
  const end = seen(m.finishAt) ? m.finishAt : m.endAt
  // A stage whose end event never came (an error reply skipped the rest of its hooks, or the client left)
  // ends at the next event that did happen, so stages never overlap; it is marked cut.
  const stages: Interval[] = []
  const add = (stage: Stage, s: number, e: number, next: number[] = []): void => {
    if (!seen(s)) return
    const stop = seen(e) ? e : Math.max(s, next.find(seen) ?? end)
    stages.push({ stage, start: s, end: stop, cut: !seen(e) })
  }
  add('accept', m.acceptAt, m.acceptedAt)
  if (seen(m.secureAt)) add('tls', m.acceptedAt, m.secureAt)
  // With TLS 1.3 the first request often rides in the same packet as the handshake's last message, so
  // its ciphertext (fine mode) arrives before the handshake ends: it cannot be read as a request sooner.
  const readStart = seen(m.secureAt) && seen(m.beginAt) ? Math.max(m.beginAt, m.secureAt) : m.beginAt
  if (seen(m.decryptStartAt)) {
    // Fine mode on TLS: bytes arriving, then the last record's decryption, then parsing.
    const decryptStart = Math.max(m.decryptStartAt, readStart)
    add('read', readStart, decryptStart)
    add('decrypt', decryptStart, m.headersAt)
  } else {
    add('read', readStart, m.headersAt)
  }
  add('parse', m.headersAt, m.requestAt)
  add('decode', m.decodeStartAt, m.decodeEndAt, [m.handlerStartAt, m.handlerEndAt])
  add('handler', m.handlerStartAt, m.handlerEndAt)
  add('serialize', m.handlerEndAt, m.serializeEndAt)
  add('write', m.serializeEndAt, m.finishAt)

  const first = stages[0]
  // Without parser marks the request object is the first thing seen; hooks before decode are a gap then.
  const start = first === undefined ? m.requestAt : Math.min(first.start, seen(m.requestAt) ? m.requestAt : Infinity)
  let covered = 0
  for (const s of stages) covered += s.end - s.start
  const ready = seen(m.secureAt) ? m.secureAt : m.acceptedAt
  const idle = seen(ready) && seen(readStart) ? Math.max(0, readStart - ready) : 0
  return { start, end, stages, gapMs: Math.max(0, end - start - covered), idleBeforeRequestMs: idle }
}
