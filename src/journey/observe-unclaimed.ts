// Requests no journey hook saw: Node or Fastify answered them before the journey's onRequest hook ran
// (Node's 400, 417 or 503, Fastify's bad-URL 400 or its 503 while closing), or they never got an answer (a
// CONNECT nobody handles, an HTTP/2 stream reset first). Each gets its record when the parser (or the
// HTTP/2 session) hands it over, so it is counted like any other; a late onRequest hook claims it.
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import { now } from './clock.ts'
import { newRequestRecord, protocolVersionOf, type ConnectionRecord, type RequestRecord } from './records.ts'
import { kConnection } from './observe-parser.ts'
import { cutOff } from './observe-connection.ts'
import { kStreamHeadersAt, type ObservedStream } from './observe-http2.ts'
import { UNMATCHED_ROUTE } from './stages.ts'
import { warnLate } from './misuse-warnings.ts'
import { closedCleanly, finish, kRecord, leaveInflight, type Response } from './request-end.ts'

/** A header's value, or its first one when it came as an array. */
export function firstHeader (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

/**
 * A request no journey hook saw (observe-parser.ts says when) gets a record at once, with the parser's
 * marks, so the answer Node or Fastify gives it is counted like any other: route (unmatched), read, parse
 * and write, nothing in between. Head-sampled here, by the journey observing its server, like any request.
 */
export function onUnclaimed (message: IncomingMessage, conn: ConnectionRecord): void {
  // An Upgrade or CONNECT the app listens for leaves HTTP: no response will come, and none is missing. A
  // CONNECT nobody listens for is closed by Node without an answer: a request, cut off.
  const leaves = (message as IncomingMessage & { upgrade?: boolean }).upgrade === true
  const refused = leaves && message.method === 'CONNECT' && (message.socket as { server?: Server } | null)?.server?.listenerCount('connect') === 0
  if (leaves && !refused) return
  const rec = newRequestRecord(conn, message.method ?? '', message.url ?? '', protocolVersionOf(conn, message), now())
  rec.userAgent = message.headers['user-agent']
  // Read now: the message is let go before the record is published (answeredBeforeHooks, cutOff).
  rec.host = message.headers.host ?? firstHeader(message.headers[':authority'])
  rec.route = UNMATCHED_ROUTE
  rec.beforeHooks = true
  rec.message = message
  conn.owner?.start(rec, message.headers)
  if (refused) {
    // Node destroys the socket as soon as this parser callback returns: the request ends here, cut off by
    // the server. Left to the connection's 'close' (libuv's next turn, ≈ 0.1–1 ms on), that wait would be
    // counted as the request's and, being no stage's, as the hooks gap, though no hook ever ran.
    conn.closedBy ??= 'server'
    if (leaveInflight(rec)) cutOff(rec, rec.requestAt)
    return
  }
  conn.unclaimed++
}

type UnclaimedStream = ObservedStream & {
  [kRecord]?: RequestRecord
  readonly rstCode?: number
  readonly sentHeaders?: Record<string, string | number | string[] | undefined>
  once: (event: 'close', listener: () => void) => unknown
}

/**
 * An HTTP/2 stream no journey hook took (observe-http2.ts says when): its record starts now, as
 * onUnclaimed's does for HTTP/1, with parse from the stream's headers and no read stage; it ends when the
 * stream closes.
 */
export function onUnclaimedH2 (observed: ObservedStream, headers: Record<string, string | string[] | undefined>, conn: ConnectionRecord): void {
  const stream = observed as UnclaimedStream
  const rec = newRequestRecord(conn, firstHeader(headers[':method']) ?? '', firstHeader(headers[':path']) ?? '', '2', now())
  rec.headersAt = stream[kStreamHeadersAt] ?? NaN
  rec.bytesWritten = NaN
  rec.userAgent = firstHeader(headers['user-agent'])
  rec.host = firstHeader(headers[':authority']) ?? firstHeader(headers.host)
  rec.route = UNMATCHED_ROUTE
  rec.beforeHooks = true
  rec.message = stream
  stream[kRecord] = rec
  conn.unclaimed++
  conn.owner?.start(rec, headers)
  stream.once('close', onUnclaimedStreamClose)
}

/** The stream of a request no journey hook took closed: answered (with the status it sent), or cut off. */
function onUnclaimedStreamClose (this: UnclaimedStream): void {
  const rec = this[kRecord]
  // Claimed since by a late onRequest hook: that record ends with its response (onStreamFinish).
  if (rec === undefined || rec.message !== this) return
  rec.message = undefined
  rec.conn.unclaimed--
  const status = Number(this.sentHeaders?.[':status'] ?? 0)
  // Answered inside Node's 'stream' listener, before requestAt (as answeredBeforeHooks says for HTTP/1).
  // A stream reset before any answer wrote nothing: no write stage.
  if (status !== 0) rec.serializeEndAt = rec.writeStartAt = rec.requestAt
  if (status !== 0 && closedCleanly(this)) return finish(rec, status, null)
  if (leaveInflight(rec)) cutOff(rec, now()) // else the connection's close came first and ended it
}

/** The unclaimed request this response answers (Node's or Fastify's own answer), now finishing. */
export function answeredBeforeHooks (res: Response): RequestRecord | undefined {
  const conn = (res.socket as (Socket & { [kConnection]?: ConnectionRecord }) | null)?.[kConnection]
  if (conn === undefined || conn.unclaimed === 0) return undefined
  const rec = conn.inflight.find(r => r.message === res.req)
  if (rec === undefined) return undefined
  rec.message = undefined
  conn.unclaimed--
  // Its answer was written before requestAt (inside the parser's callback); write runs on to 'finish'.
  // Where its bytes started on the socket was never marked: not measured. Pipelined behind a response
  // that finished after it was answered, it got the socket only then: the wait is a pipelined gap.
  rec.serializeEndAt = rec.requestAt
  rec.writeStartAt = conn.lastFinishAt > rec.requestAt ? conn.lastFinishAt : rec.requestAt
  rec.bytesWritten = NaN
  return rec
}

/**
 * The journey's onRequest hook ran after all for a request first seen unclaimed (a hook registered before
 * the journey's, or the server's handler, deferred it): it takes that record rather than making a second.
 */
export function claim (conn: ConnectionRecord, message: IncomingMessage): RequestRecord | undefined {
  // An HTTP/2 request's unclaimed record is its stream's (onUnclaimedH2).
  const key = conn.multiplexed ? (message as { stream?: object }).stream : message
  const rec = conn.inflight.find(r => r.message === key)
  if (rec === undefined) return undefined
  warnLate()
  rec.message = undefined
  rec.beforeHooks = false
  rec.requestAt = now()
  conn.unclaimed--
  return rec
}
