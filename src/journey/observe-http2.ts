// HTTP/2 on a connection the journey observes (observe-connection.ts): its session, its errors, and each
// stream's parse mark. nghttp2 reads and decodes frames in C++, so there are no parser callbacks as on
// HTTP/1.1; a stream's parse starts where Node hands its decoded headers to JS.
import type { EventEmitter } from 'node:events'
import type { Http2SecureServer, Http2Server } from 'node:http2'
import type { Socket } from 'node:net'
import { now } from './clock.ts'
import type { ConnectionRecord } from './records.ts'
import { channels, publishConnection } from './publish.ts'
import { kConnection } from './observe-parser.ts'

type Observed = Socket & { [kConnection]?: ConnectionRecord }

/** On an HTTP/2 stream: when the stream's request headers were decoded and handed to JS (its parse starts). */
export const kStreamHeadersAt = Symbol('request-journey.stream-headers-at')
/** On an HTTP/2 stream: the journey's onRequest hook took it (startStream, request-end.ts). */
export const kStreamClaimed = Symbol('request-journey.stream-claimed')

/** An HTTP/2 stream as the journey sees it. */
export interface ObservedStream {
  [kStreamHeadersAt]?: number
  [kStreamClaimed]?: boolean
  readonly session: { [kConnection]?: ConnectionRecord } | undefined
}

/** Told of an HTTP/2 stream no journey hook took while Node handed it to the app; see onUnclaimedStream. */
export type UnclaimedStreamObserver = (stream: ObservedStream, headers: Record<string, string | string[] | undefined>, conn: ConnectionRecord) => void
let unclaimedStream: UnclaimedStreamObserver | undefined

/**
 * HTTP/2's counterpart of observe-parser's onUnclaimedMessage. Node's compatibility layer turns a stream into
 * a request for the app from inside its own 'stream' listener, and Fastify runs the journey's onRequest hook
 * in that call. A stream still unclaimed after it was answered before any journey hook (Fastify's 400 for a
 * malformed URL) or deferred by a hook registered before the journey's.
 */
export function onUnclaimedStream (observer: UnclaimedStreamObserver | undefined): void {
  unclaimedStream = observer
}

// HTTP/2. Node creates the session inside its own connection listener (on 'secureConnection' for TLS), after
// the journey's prepended ones put the record on the socket; a TLS server that lets HTTP/1.1 clients in
// (allowHTTP1) gives those a parser instead, and no session.
type ObservedSession = EventEmitter & { socket: Observed | undefined, readonly destroyed: boolean, [kConnection]?: ConnectionRecord }

function onSession (session: ObservedSession): void {
  const conn = session.socket?.[kConnection]
  if (conn === undefined) return
  conn.multiplexed = true
  session[kConnection] = conn // a session that failed no longer reaches its socket
  session.on('timeout', onSessionTimeout)
}

/**
 * Appended after Node's own listener, which destroys a session idle past the server's timeout (Fastify's
 * connectionTimeout) unless the app handles the server's 'timeout'. The streams it cuts off close before
 * the socket does, so without this they could not say who cut them (journey.aborted_by).
 */
function onSessionTimeout (this: ObservedSession): void {
  const conn = this[kConnection]
  if (conn !== undefined && this.destroyed) conn.closedBy ??= 'server'
}

/**
 * The `journey_connection_errors_total` reason of an HTTP/2 session error (a server's `'sessionError'`): the
 * client's reset, or a protocol error — a malformed frame, or a header block past the server's
 * `maxHeaderListSize`, which nghttp2 answers with GOAWAY and which Node reports only as `ERR_HTTP2_ERROR`.
 */
export function sessionErrorReason (err: NodeJS.ErrnoException): string {
  return err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'client_reset' : 'http2_protocol'
}

// A session error: Node closes the session, and so the connection. Counting it does not change that: Node
// emits it whether anyone listens or not.
function onSessionError (err: NodeJS.ErrnoException, session: { [kConnection]?: ConnectionRecord }): void {
  const conn = session[kConnection]
  if (conn === undefined) return
  conn.errors.push(sessionErrorReason(err))
  publishConnection(channels.connectionError, conn)
}

// Prepended: before Node's compatibility layer turns the stream into a request for the app.
function onStream (stream: ObservedStream): void {
  stream[kStreamHeadersAt] = now()
}

// Appended: after Node's compatibility layer handed the stream to the app, and Fastify ran as far as it runs
// at once. One property read per stream for the streams the journey's hook took.
function onStreamHandedOver (stream: ObservedStream, headers: Record<string, string | string[] | undefined>): void {
  if (stream[kStreamClaimed] === true || unclaimedStream === undefined) return
  const conn = stream.session?.[kConnection]
  if (conn !== undefined) unclaimedStream(stream, headers, conn)
}

/** An HTTP/2 server (node:http2's, plain or secure): it has updateSettings(), which HTTP/1 servers lack. */
export function isHttp2Server (server: object): server is Http2Server | Http2SecureServer {
  return typeof (server as { updateSettings?: unknown }).updateSettings === 'function'
}

/** Attaches the HTTP/2 observers to an observed node:http2 server (plain or secure). */
export function observeHttp2Server (server: Http2Server | Http2SecureServer): void {
  const s = server as EventEmitter // the listeners below take the parts of a session and stream they read
  s.on('session', onSession)
  s.on('sessionError', onSessionError)
  s.prependListener('stream', onStream)
  s.on('stream', onStreamHandedOver)
}
