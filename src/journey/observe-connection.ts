// accept and tls marks, connection life and connection errors, from the net/tls/http servers the app owns.
// Only timestamps and a few strings are written here; consumers turn them into telemetry.
import type { Server as HttpServer } from 'node:http'
import type { Http2SecureServer, Http2Server } from 'node:http2'
import type { Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { now } from './clock.ts'
import { addonFd, readTcpInfoOf } from './tcp-info.ts'
import { newConnectionRecord, type ConnectionRecord, type JourneyOwner, type RequestRecord } from './records.ts'
import { channels, publishConnection, publishRequest } from './publish.ts'
import { kConnection, observeChunks, observeParser, settleDeclaredBody } from './observe-parser.ts'
import { isHttp2Server, observeHttp2Server } from './observe-http2.ts'
import { settleBackpressure, timeHandOver } from './hand-over.ts'

type Observed = Socket & { [kConnection]?: ConnectionRecord }
/** What the journey can observe: node:http and node:https servers, and node:http2's (plain or secure). */
export type ObservableServer = HttpServer | Http2Server | Http2SecureServer

function onConnection (this: HttpServer & { [kListener]: string, [kOwner]?: JourneyOwner }, socket: Observed): void {
  const conn = newConnectionRecord(this[kListener], this instanceof TlsServer, now(), this[kOwner])
  // First thing after accept: how long the kernel had held this connection (and its bytes) before us.
  conn.fd = addonFd(socket)
  conn.kernel = readTcpInfoOf(conn.fd)
  // The peer for spans, asked while the socket is open (a connection span is made at close, when the
  // socket no longer knows it): one getpeername per connection (Node keeps the answer), ≈ 3 µs with what
  // Node builds around it, so not asked by a journey without tracing, where nothing would read it.
  if (conn.owner?.traced !== false) {
    conn.peerAddress = socket.remoteAddress
    conn.peerPort = socket.remotePort
  }
  socket[kConnection] = conn
  conn.owner?.sockets.add(socket)
  // Plain TCP: the writes to time are this socket's. Over TLS they are the TLSSocket's, which exists only
  // once the handshake is done (onSecureConnection).
  if (!(this instanceof TlsServer)) timeHandOver(socket)
  socket.on('close', onClose)
  // Who ended the connection: the client's FIN is the socket's 'end', the server's own is its 'finish'. On
  // TLS the TCP socket emits neither (the TLS layer reads and writes its handle): the TLSSocket does, once
  // secure (onSecureConnection).
  if (!conn.secure) watchEnds(socket)
  publishConnection(channels.connectionOpen, conn)
}

// Node accepted the connection and closed it at once, without a 'connection' event: the server had
// maxConnections open. Only counted: a span per dropped connection would add work at the moment of overload.
function onDrop (this: HttpServer & { [kListener]: string, [kOwner]?: JourneyOwner }): void {
  if (channels.connectionDrop.hasSubscribers) channels.connectionDrop.publish({ listener: this[kListener], owner: this[kOwner] })
}

function watchEnds (socket: Observed): void {
  socket.on('end', onClientEnd)
  socket.on('finish', onServerEnd)
}

function onClientEnd (this: Observed): void {
  const conn = this[kConnection]
  if (conn !== undefined) conn.closedBy ??= 'client'
}

function onServerEnd (this: Observed): void {
  const conn = this[kConnection]
  if (conn !== undefined) conn.closedBy ??= 'server'
}

/** Appended: runs after Node's own listener, so the HTTP parser (plain) or the TLSSocket (TLS) exists. */
function onConnected (this: HttpServer & { [kFine]?: boolean }, socket: Observed): void {
  const conn = socket[kConnection]
  if (conn === undefined) return
  conn.acceptedAt = now()
  if (!conn.secure && observeParser(socket) && this[kFine] === true) observeChunks(socket)
}

/**
 * The socket a TLSSocket was made from: `_parent` for a TCP socket, the JS stream behind the TLS handle
 * for a CipherTap (fine mode). Both undocumented; test/journey/internals.test.ts guards them.
 */
function underlying (socket: TLSSocket): Observed | undefined {
  const s = socket as unknown as { _parent?: Observed, _handle?: { _parentWrap?: { stream?: Observed } } }
  return s._parent ?? s._handle?._parentWrap?.stream
}

function onSecureConnection (socket: TLSSocket & Observed): void {
  const conn = underlying(socket)?.[kConnection]
  if (conn === undefined) return
  conn.secureAt = now()
  socket[kConnection] = conn
  // Protocol and resumption label the handshake histogram; cipher, ALPN and SNI go only on spans, and
  // like the peer (onConnection) are read now or never: not by a journey without tracing.
  conn.tlsProtocol = socket.getProtocol() ?? undefined
  conn.tlsResumed = socket.isSessionReused()
  if (conn.owner?.traced !== false) {
    conn.tlsCipher = socket.getCipher()?.name
    conn.tlsAlpn = socket.alpnProtocol === false ? undefined : socket.alpnProtocol ?? undefined
    const sni = (socket as unknown as { servername?: string | false }).servername
    conn.tlsSni = typeof sni === 'string' ? sni : undefined
  }
  watchEnds(socket)
  timeHandOver(socket)
  publishConnection(channels.connectionTls, conn)
}

/** A TLS client that offered an HTTP/2 server no protocol it serves (onSecureConnected). */
const UNKNOWN_PROTOCOL = 'unknown_protocol'

/** Appended: runs after the https server's HTTP connection listener has attached its parser. */
function onSecureConnected (this: HttpServer & { [kFine]?: boolean }, socket: TLSSocket & Observed): void {
  const conn = socket[kConnection]
  if (conn === undefined) return
  if (observeParser(socket) && this[kFine] === true) observeChunks(socket)
  // An HTTP/2 server gave this connection neither a session nor an HTTP/1 parser: the client offered no
  // protocol it serves (no ALPN, on a server without allowHTTP1), and Node answered 403 and ends it. (Asked
  // of the socket, not of observeParser, which also says no when it cannot watch a parser that is there.)
  if (!conn.multiplexed && isHttp2Server(this) && (socket as { parser?: unknown }).parser == null) {
    conn.errors.push(UNKNOWN_PROTOCOL)
    publishConnection(channels.connectionError, conn)
  }
}

function onTlsClientError (err: NodeJS.ErrnoException, socket: TLSSocket): void {
  const conn = underlying(socket)?.[kConnection]
  if (conn === undefined || conn.tlsFailure !== undefined) return
  conn.tlsFailure = tlsFailureReason(err)
  publishConnection(channels.connectionTls, conn)
}

/**
 * A bounded set of reasons: error codes are a fixed set in Node; anything else is 'other'. OpenSSL's own
 * codes keep their name, in label-friendly characters: OpenSSL 3 names the alerts a client sends
 * "SSL/TLS_ALERT_…", which Node turns into ERR_SSL_SSL/TLS_ALERT_… (reason `ssl_tls_alert_…`).
 */
export function tlsFailureReason (err: NodeJS.ErrnoException): string {
  const code = err.code ?? ''
  if (code === 'ERR_SSL_HTTP_REQUEST') return 'plain_http'
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout'
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'client_reset'
  if (code.startsWith('ERR_SSL_')) return code.slice('ERR_SSL_'.length).toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 48)
  return 'other'
}

/**
 * OpenSSL's handshake codes are open-ended, but these few are what an operator must see the first time
 * they happen, so they are exported at 0 (knownReasons). Each is what a real client gives Node 24
 * (test/journey/known-reasons.test.ts): the first four are a client rejecting the server's certificate with
 * an alert — an OpenSSL client (curl, Python) not trusting its issuer, Chromium not trusting it, an expired one, one not yet valid
 * (a client that closes without an alert, as Node's own does, is `client_reset`; one that checks the host
 * name after the handshake, as curl does, ends a handshake that succeeded). The last two are the server's TLS
 * settings refusing a client: a protocol version it no longer allows, no cipher in common.
 */
export const CERTIFICATE_REJECTED = ['tlsv1_alert_unknown_ca', 'ssl_tls_alert_certificate_unknown', 'ssl_tls_alert_certificate_expired', 'ssl_tls_alert_bad_certificate'] as const
const CLIENT_REFUSED = ['unsupported_protocol', 'no_shared_cipher'] as const

function onClientError (this: HttpServer, err: NodeJS.ErrnoException, socket: Observed): void {
  const conn = socket[kConnection]
  if (conn !== undefined) {
    conn.errors.push(clientErrorReason(err))
    publishConnection(channels.connectionError, conn)
  }
  // A 'clientError' listener replaces Node's default answer. When ours is the only one, answer as Node
  // would have, so observing never changes behaviour.
  if (this.listenerCount('clientError') === 1) defaultClientError(err, socket)
}

export function clientErrorReason (err: NodeJS.ErrnoException): string {
  const code = err.code ?? ''
  if (code === 'HPE_HEADER_OVERFLOW') return 'header_overflow'
  // The HTTP/2 connection preface (`PRI * HTTP/2.0`): an h2c client, or a balancer or gRPC client set up
  // for HTTP/2 backends. Worth its own reason: every request from such a client fails the same way.
  if (code === 'HPE_PAUSED_H2_UPGRADE') return 'http2'
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout'
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'client_reset'
  // The client closed its side in the middle of a request (headers cut off, a body shorter than its
  // Content-Length): a client giving up, not malformed input, so not `bad_request`. A request already
  // parsed ends as an aborted request too; this counts what the connection saw.
  if (code === 'HPE_INVALID_EOF_STATE') return 'incomplete_request'
  // A TLS 1.2 client renegotiating past Node's limit (tls.CLIENT_RENEG_LIMIT in CLIENT_RENEG_WINDOW): each
  // renegotiation is a handshake's CPU on the server, so a flood of them is an attack Node cuts off.
  if (code === 'ERR_TLS_SESSION_ATTACK') return 'tls_renegotiation'
  // OpenSSL failing on a record after the handshake (a corrupted or forged one: a bad MAC). One reason, as
  // OpenSSL has hundreds of codes; the log line keeps the code. Failures during the handshake are counted
  // as handshake failures instead (tlsFailureReason).
  if (code.startsWith('ERR_SSL_')) return 'tls_error'
  if (code.startsWith('HPE_')) return 'bad_request'
  return 'other'
}

function defaultClientError (err: NodeJS.ErrnoException, socket: Socket): void {
  if (socket.writable) {
    const status = err.code === 'HPE_HEADER_OVERFLOW'
      ? '431 Request Header Fields Too Large'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`)
  }
  socket.destroy(err)
}

function onClose (this: Observed): void {
  const conn = this[kConnection]
  if (conn === undefined) return
  // First, so a closed socket never stays in the set whatever follows (journey.close() waits on the rest).
  conn.owner?.sockets.delete(this)
  const at = now()
  conn.closeAt = at
  // Destroyed with neither FIN seen: the client's reset (or its hang-up during a TLS handshake), else the
  // server's destroy (a timeout, an error, shutdown).
  conn.closedBy ??= conn.errors.includes('client_reset') || conn.tlsFailure === 'client_reset' ? 'client' : 'server'
  conn.bytesRead = this.bytesRead
  conn.bytesWritten = this.bytesWritten
  // Requests still in flight were cut off: their records end here, so no span is ever lost.
  for (const rec of conn.inflight) cutOff(rec, at)
  conn.inflight.length = 0
  conn.unclaimed = 0
  publishConnection(channels.connectionClose, conn)
}

/**
 * Whether a cut-off request's status line left Node. `headersSent` says only that its headers were made: on
 * HTTP/1 a response to a connection Node had already destroyed (a malformed request behind it in the
 * pipeline gets Node's 400 and the close) and one held back behind an earlier response never reach the
 * socket, so the socket must have taken bytes since its write started. Taken is not delivered: bytes the
 * kernel had not sent when the connection closed are lost all the same. HTTP/2 streams count no bytes of
 * their own; there `headersSent` means Node handed the HEADERS frame to its session, which sends it. A client
 * that had already cancelled the stream discards it (Node's own client does, for a request cancelled as it
 * is made: the server's session read the reset after answering and wrote the 200, seen with a random mix of
 * streams), so that status is one the server sent, not one the client saw.
 */
function statusWentOut (rec: RequestRecord): boolean {
  if (rec.response?.headersSent !== true) return false
  return rec.conn.multiplexed || bytesWrittenSoFar(rec) > 0
}

/**
 * What the socket took of an HTTP/1 response not finished: NaN for an HTTP/2 stream (the socket's bytes are
 * every stream's) and for a response with no socket (held back behind an earlier one in a pipeline).
 */
function bytesWrittenSoFar (rec: RequestRecord): number {
  const socket = rec.response?.socket
  if (rec.conn.multiplexed || socket == null) return NaN
  // A response no onSend saw (a hijacked reply) started where the one before it ended, as in finish().
  const start = Number.isNaN(rec.bytesWrittenStart) ? rec.conn.bytesWrittenAtFinish : rec.bytesWrittenStart
  return socket.bytesWritten - start
}

/**
 * A request cut off before its response finished (its client left, or the server closed the connection: a
 * timeout, shutdown): its record ends at `at`, aborted. The caller takes it out of `inflight`.
 */
export function cutOff (rec: RequestRecord, at: number): void {
  rec.aborted = true
  // Set only once one side has ended the connection (its FIN, or the server destroying it): a request cut off
  // then went with its connection. An HTTP/2 stream reset on a connection that lives on says no side.
  rec.abortedBy = rec.conn.closedBy
  // Its headers were out (a stream cut off mid-body, an SSE stream its client closed): say what it sent.
  if (statusWentOut(rec)) rec.status = rec.response!.statusCode
  // What left before the cut (the span's journey.write.bytes), not a whole response's: the metric skips it.
  // An answer given before any hook was never measured (answeredBeforeHooks).
  rec.bytesWritten = rec.beforeHooks ? NaN : bytesWrittenSoFar(rec)
  rec.endAt = at
  rec.message = undefined
  settleDeclaredBody(rec)
  settleBackpressure(rec)
  publishRequest(rec)
}

/**
 * The reasons a server of this kind can count in `journey_connection_errors_total` and, if it speaks TLS,
 * `journey_tls_handshake_failures_total` (of OpenSSL's open-ended handshake codes, the common few): the metrics
 * consumer exports each at 0 once the server is observed, so an error's first occurrence is an increase
 * Prometheus can see (a series born at 1 is not). Kept beside the functions that name them (HTTP/2's:
 * sessionErrorReason in observe-http2.ts); a test holds the functions to these lists.
 */
export function knownReasons (server: object): { connectionErrors: string[], tlsFailures: string[] } {
  const tls = server instanceof TlsServer
  const http2 = isHttp2Server(server)
  // HTTP/1's parser errors (clientErrorReason): every server but h2c, which parses no HTTP/1 (a TLS HTTP/2
  // server may, with allowHTTP1: there an HTTP/2 preface sent without ALPN reaches the HTTP/1 parser too).
  const http1 = !http2 || tls ? ['bad_request', 'header_overflow', 'http2', 'request_timeout', 'client_reset', 'incomplete_request', 'other'] : []
  return {
    connectionErrors: [
      ...http1,
      ...(http2 ? ['http2_protocol'] : []),
      ...(http2 && !tls ? ['client_reset'] : []),
      ...(tls ? ['tls_renegotiation', 'tls_error'] : []),
      ...(tls && http2 ? [UNKNOWN_PROTOCOL] : [])
    ],
    tlsFailures: tls ? ['plain_http', 'timeout', 'client_reset', 'other', ...CERTIFICATE_REJECTED, ...CLIENT_REFUSED] : []
  }
}

const kListener = Symbol('request-journey.listener')
const kFine = Symbol('request-journey.fine')
const kOwner = Symbol('request-journey.owner')

/**
 * Attach the journey's observers to a server the app owns (http.Server or https.Server, or node:http2's).
 * `listener` names it in telemetry (bounded: one value per server); its connections belong to `owner`.
 * False when some journey observes it already (it is left as it is).
 */
export function observeServer (server: ObservableServer, listener: string, fine = false, owner?: JourneyOwner): boolean {
  const s = server as HttpServer & { [kListener]: string, [kFine]: boolean, [kOwner]?: JourneyOwner }
  // Observed twice, every connection would be two records: the first observer keeps the server.
  if (isObserved(server)) return false
  s[kListener] = listener
  s[kFine] = fine
  s[kOwner] = owner
  s.prependListener('connection', onConnection)
  s.on('connection', onConnected)
  s.prependListener('clientError', onClientError)
  s.on('drop', onDrop)
  if (server instanceof TlsServer) {
    s.prependListener('secureConnection', onSecureConnection)
    s.on('secureConnection', onSecureConnected)
    s.on('tlsClientError', onTlsClientError)
  }
  if (isHttp2Server(server)) observeHttp2Server(server)
  return true
}

/** Whether some journey observes this server already (by its serverFactory, observeServer, or its plugin). */
export function isObserved (server: object): boolean {
  return kListener in server
}
