// Where a request's record ends, and is published once: its response's 'finish' (every byte handed to the
// kernel), its HTTP/2 stream's close, or its switch to another protocol (an upgrade). A record leaves its
// connection's `inflight` exactly once, here or at the connection's close (observe-connection.ts).
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants as h2 } from 'node:http2'
import type { Socket } from 'node:net'
import { now } from './clock.ts'
import type { RequestRecord } from './records.ts'
import { publishRequest } from './publish.ts'
import { cutOff } from './observe-connection.ts'
import { settleDeclaredBody } from './observe-parser.ts'
import { settleBackpressure } from './hand-over.ts'
import { kStreamClaimed, kStreamHeadersAt, type ObservedStream } from './observe-http2.ts'

/** The record of the request a response answers, on the response (set by the journey's onRequest hook). */
export const kRecord = Symbol('request-journey.record')
const { NGHTTP2_NO_ERROR, NGHTTP2_STREAM_CLOSED } = h2
export type Response = ServerResponse & { [kRecord]?: RequestRecord }

/** Takes the record out of its connection's `inflight`; false when it had left already (it is ended). */
export function leaveInflight (rec: RequestRecord): boolean {
  const inflight = rec.conn.inflight
  const i = inflight.indexOf(rec)
  if (i === -1) return false
  // Almost always the only one (keep-alive without pipelining): pop() keeps the array's storage for the
  // connection's next request, where splice() gave it back and the next push() allocated it again.
  if (i === inflight.length - 1) inflight.pop()
  else inflight.splice(i, 1)
  return true
}

/**
 * From when the connection's writes are this response's: its write stage's start; for a reply the handler
 * wrote itself (reply.hijack(), reply.raw; no onSend marked a write), its handler's; for an answer given
 * before any hook, written inside the parser's callback before its record existed, the end of the response
 * before it on the connection (the first one: every write so far).
 */
function ownWritesFrom (rec: RequestRecord): number {
  if (rec.beforeHooks) return Number.isNaN(rec.conn.lastFinishAt) ? 0 : rec.conn.lastFinishAt
  return Number.isNaN(rec.writeStartAt) ? rec.handlerStartAt : rec.writeStartAt
}

/**
 * The record's end: published once. A record leaves `inflight` exactly once, here or at the connection's
 * close, so a response that somehow finishes after its connection closed is never counted twice.
 */
export function finish (rec: RequestRecord, status: number, socket: Socket | null): void {
  if (!leaveInflight(rec)) return
  const finished = now()
  // The response's bytes reached the kernel when its last write returned, if the kernel took them all
  // then; Node's 'finish' comes a tick later, over TLS a loop turn later (hand-over.ts). That write was this
  // response's if it came after the response began to be written: none of a later response's can come
  // before this 'finish'. (An HTTP/2 session's writes are every stream's: a stream ends at its close.)
  const handed = rec.conn.handedAt
  rec.finishAt = handed >= ownWritesFrom(rec) && !rec.conn.multiplexed
    // An answer given before any hook was in the kernel before its write stage began, which stays empty.
    ? (handed < rec.writeStartAt ? rec.writeStartAt : handed)
    : finished
  rec.endAt = rec.finishAt
  // A response held back behind this one (pipelining) gets the socket now, at 'finish'.
  rec.conn.lastFinishAt = finished
  rec.status = status
  if (socket != null) {
    // A response no onSend saw (the handler hijacked the reply) started where the one before it ended.
    const written = socket.bytesWritten
    if (!rec.beforeHooks) rec.bytesWritten = written - (Number.isNaN(rec.bytesWrittenStart) ? rec.conn.bytesWrittenAtFinish : rec.bytesWrittenStart)
    rec.conn.bytesWrittenAtFinish = written
  }
  settleDeclaredBody(rec)
  settleBackpressure(rec)
  publishRequest(rec)
}

/**
 * An HTTP/2 request (a stream): parse starts where Node handed the stream's decoded headers to JS, and the
 * response ends at its stream's close, which no diagnostics channel reports. Its bytes are not counted: the
 * socket's are every stream's.
 */
type BodyStream = ObservedStream & { endAfterHeaders?: boolean, push: (chunk: unknown, encoding?: BufferEncoding) => boolean }

export function startStream (rec: RequestRecord, raw: IncomingMessage, res: ServerResponse): void {
  const stream = (raw as { stream?: BodyStream }).stream
  if (stream !== undefined) {
    stream[kStreamClaimed] = true
    // Counted even with a content-length, which a stream answered or reset before its end did not deliver.
    if (stream.endAfterHeaders === false) countStreamBody(stream, rec)
  }
  rec.headersAt = stream?.[kStreamHeadersAt] ?? NaN
  rec.bytesWritten = NaN
  // Emitted once, for every stream: ended, reset or cut off with its connection. Prepended, so the record
  // is finished before Fastify's onResponse hooks run on the same event (a log line reads it there).
  res.prependListener('finish', onStreamFinish)
}

/**
 * An HTTP/2 request body (its HEADERS frame did not end the stream), counted as its DATA arrives, with or
 * without a content-length. Node parses HTTP/2 natively, with no body callback to wrap as on HTTP/1.1; every
 * DATA payload reaches JS through the stream's push() — how any Readable's implementation hands data over —
 * so this stream's push is wrapped, and only streams with a body pay for it. Counted until the record ends.
 */
function countStreamBody (stream: BodyStream, rec: RequestRecord): void {
  rec.requestBodyBytes = 0
  const push = stream.push
  stream.push = function (chunk, encoding) {
    if (chunk != null && Number.isNaN(rec.endAt)) rec.requestBodyBytes += (chunk as { length: number }).length
    return push.call(this, chunk, encoding)
  }
}

/** The stream closed without a reset that leaves something missing (see onStreamFinish). */
export function closedCleanly (stream: { readonly rstCode?: number } | undefined): boolean {
  const rstCode = stream?.rstCode ?? NGHTTP2_NO_ERROR
  return rstCode === NGHTTP2_NO_ERROR || rstCode === NGHTTP2_STREAM_CLOSED
}

// Node's HTTP/2 compatibility layer emits 'finish' when the stream closes, whether the response was ended
// and sent, or the client reset the stream (RST_STREAM: a cancelled request) or the connection went first.
// A response the app ended is complete unless the stream was reset for a reason other than NO_ERROR or
// STREAM_CLOSED: a client resets a stream it already holds the end of with STREAM_CLOSED (curl does when
// a frame for it arrives late), so that code says nothing is missing.
function onStreamFinish (this: Response): void {
  const rec = this[kRecord]
  if (rec === undefined) return
  if (this.writableEnded && closedCleanly((this as { stream?: { rstCode?: number } }).stream)) return finish(rec, this.statusCode, null)
  if (leaveInflight(rec)) cutOff(rec, now()) // else the connection's close came first and ended it
}

/**
 * A request that left HTTP: its handler switched the connection to another protocol (a WebSocket, through
 * a plugin that routes the upgrade through Fastify and hijacks the reply, as @fastify/websocket does) and
 * wrote the 101 itself. No 'finish' comes for such a response, so the record ends here, status 101, its
 * handler stage holding the handshake; the connection lives on in the new protocol until its close.
 */
export function finishUpgraded (rec: RequestRecord, socket: Socket | null): void {
  finish(rec, 101, socket) // at most once: finish() takes only a record still in flight
}
