// One request seen from both sides on one timeline: the phase client's marks and the server's spans of
// the trace the client started. Both are epoch ms from each process's monotonic clock (see
// phase-client.ts), so "client connected → server accepted" is a real interval, measured across processes.
//
// Each process anchors its monotonic clock to the wall clock once, at start-up, and the two anchors can
// disagree: usually by tens of µs, but runs here saw ≈ 4 ms (a server that "accepted" 4.5 ms after the
// client connected while TCP_INFO said the connection had waited < 4 ms). So the offset is estimated from
// causality, the way trace viewers correct clock skew: the server cannot accept before the client called
// connect(), and cannot start writing its response after the client saw its first byte. Over many
// requests those bounds pinch the offset. The correction is the smallest one that makes every request
// causal (none when the bounds contain 0): one side's bound is loose whenever connections wait in the
// accept queue, so the middle of the interval would invent an offset.
import type { Phases } from './phase-client.ts'
import type { ReceivedSpan } from './span-receiver.ts'

export interface Joined {
  traceId: string
  /** Everything below is ms after the client called connect(). */
  client: { connected: number, written: number, firstByte: number, end: number }
  server: {
    /** The request span (first byte parsed → response handed over; starts at accept on a new connection). */
    request: { start: number, end: number }
    /** Stage spans in order. */
    stages: Array<{ name: string, start: number, end: number }>
    /** TCP_INFO at accept: how long the connection had waited in the kernel's accept queue. */
    kernelWaitMs: number | undefined
    /** TCP_INFO at the request: how long its bytes had waited in the kernel's receive queue. */
    readKernelWaitMs: number | undefined
  }
  /** Client's TCP connect completed → server's accept stage began, across the two clocks. */
  connectedToAcceptMs: number
}

const STAGE_PREFIX = 'journey.'
const SERVER = 2

export interface ClockOffset {
  /** Server clock minus client clock, ms: subtract from server times. 0 when the bounds contain 0. */
  offsetMs: number
  /** The interval causality allows; lower > upper would mean the marks contradict each other. */
  lowerMs: number
  upperMs: number
  requests: number
}

/** The offset between the server's and the client's clocks that the joined requests allow. */
export function estimateOffset (pairs: Array<{ phases: Phases, spans: ReceivedSpan[] }>): ClockOffset {
  let lower = -Infinity
  let upper = Infinity
  let n = 0
  for (const { phases, spans } of pairs) {
    const accept = spans.find(s => s.name === 'journey.accept')
    const write = spans.find(s => s.name === 'journey.write')
    if (accept !== undefined) upper = Math.min(upper, accept.start - phases.start)
    if (write !== undefined && Number.isFinite(phases.firstByte)) lower = Math.max(lower, write.start - phases.firstByte)
    if (accept !== undefined || write !== undefined) n++
  }
  const consistent = lower <= upper
  const offsetMs = !consistent ? 0 : lower > 0 ? lower : upper < 0 ? upper : 0
  return { offsetMs, lowerMs: lower, upperMs: upper, requests: n }
}

/**
 * Undefined when the server exported nothing for this trace (it does not honour traceparent, or dropped
 * it). `offsetMs` (from estimateOffset) is taken off every server time.
 */
export function join (p: Phases, spans: ReceivedSpan[], offsetMs = 0): Joined | undefined {
  if (p.traceId === undefined) return undefined
  // The request span: the trace's SERVER span (the handler's own spans, if any, are INTERNAL or CLIENT).
  const request = spans.find(s => s.kind === SERVER)
  if (request === undefined) return undefined
  const rel = (t: number): number => t - p.start
  const srv = (t: number): number => t - offsetMs - p.start
  const stages = spans
    .filter(s => s.parentSpanId === request.spanId && s.name.startsWith(STAGE_PREFIX))
    .sort((a, b) => a.start - b.start)
  const accept = stages.find(s => s.name === 'journey.accept')
  const wait = accept?.attributes['journey.accept.kernel_wait_ms']
  const readWait = stages.find(s => s.name === 'journey.read')?.attributes['journey.read.kernel_wait_ms']
  return {
    traceId: p.traceId,
    client: { connected: rel(p.connected), written: rel(p.written), firstByte: rel(p.firstByte), end: rel(p.end) },
    server: {
      request: { start: srv(request.start), end: srv(request.end) },
      stages: stages.map(s => ({ name: s.name.slice(STAGE_PREFIX.length), start: srv(s.start), end: srv(s.end) })),
      kernelWaitMs: typeof wait === 'number' ? wait : undefined,
      readKernelWaitMs: typeof readWait === 'number' ? readWait : undefined
    },
    connectedToAcceptMs: accept === undefined ? NaN : srv(accept.start) - rel(p.connected)
  }
}

const f = (ms: number): string => ms.toFixed(2).padStart(8)

/**
 * Why the client saw its first byte late, when it did: the time from the server starting to write to the
 * client reading is the wire (µs on loopback) and the client's own wait to run. Said, so a reader does not
 * look for it in the server's stages (seen: 14 ms on this 2-core machine while offloaded compute threads
 * kept the client process off the CPU).
 */
function firstByteNote (j: Joined): string {
  const write = j.server.stages.find(s => s.name === 'write')
  if (write === undefined) return ''
  const gap = j.client.firstByte - write.start
  return gap > 1 ? ` (${gap.toFixed(2)} ms after the server began writing: the wire, and the client's own wait to read)` : ''
}

/** The joined request as lines of one timeline, client and server interleaved by time. */
export function timeline (j: Joined): string[] {
  const events: Array<[number, string]> = [
    [0, 'client  connect() called'],
    [j.client.connected, 'client  TCP connected (handshake done in the kernel)'],
    [j.client.written, 'client  request written'],
    [j.client.firstByte, `client  first response byte${firstByteNote(j)}`],
    [j.client.end, 'client  last byte, connection closed']
  ]
  for (const s of j.server.stages) {
    const extra = s.name === 'accept' && j.server.kernelWaitMs !== undefined
      ? ` (TCP_INFO: the connection waited ${j.server.kernelWaitMs} ms in the accept queue)`
      : s.name === 'read' && j.server.readKernelWaitMs !== undefined
        ? ` (TCP_INFO: the request's bytes waited ${j.server.readKernelWaitMs} ms in the receive queue)`
        : ''
    events.push([s.start, `server  ${s.name.padEnd(9)} ${f(s.end - s.start).trim()} ms${extra}`])
  }
  return events.sort((a, b) => a[0] - b[0]).map(([t, text]) => `${f(t)} ms  ${text}`)
}
