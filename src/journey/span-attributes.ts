// The attributes of a kept request's spans, read from its finished record. Pure: the span consumer decides
// what to build, this says what each span carries (names in stages.ts; docs/stages.md says what they mean).
//
// Objects are filled by assignment (a[KEY] = value), never built as literals with computed keys
// ({ [KEY]: value }): V8 gives each computed key of a literal a cache that knows one hidden class or "any",
// and once a quiet moment with no span alive lets a collection free those classes, the rebuilt ones turn
// every such literal generic for good — ≈ 550 ns instead of ≈ 12 for ten keys, measured here
// (bench/NOTES.md, seventeenth session; the same as process.nextTick's, src/tick-shape.ts). Assignments and
// literals with plain keys keep their speed.
import type { Attributes } from '@opentelemetry/api'
import {
  ATTR_CLIENT_ADDRESS, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_METHOD_ORIGINAL, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_PATH, ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL
} from '@opentelemetry/semantic-conventions'
import type { ConnectionRecord, RequestRecord } from './records.ts'
import { ATTR, UNMATCHED_ROUTE, type Precision } from './stages.ts'
import { handlerWroteResponse, markIn, syncPartOf, roundNs, type Interval, type Timeline } from './timeline.ts'
import { urlPath } from './url-path.ts'
import { serverAddressOf } from './server-address.ts'
import { methodLabel } from './http-method.ts'

/**
 * Who sent the request: Fastify's `request.ip`, so the app's `trustProxy` decides whether a forwarded
 * address counts (asked here, for kept requests only: with trustProxy it parses X-Forwarded-For). Without
 * a Fastify request (answered before its hooks), or if asking fails, the TCP peer.
 */
function clientAddress (rec: RequestRecord): string | undefined {
  try {
    return rec.request?.ip ?? rec.conn.peerAddress
  } catch {
    return rec.conn.peerAddress
  }
}

/**
 * The host the client asked for: Fastify's `request.host` (X-Forwarded-Host only from a proxy the app
 * trusts, :authority on HTTP/2, Host), asked for kept requests only; for a request answered before its
 * hooks, the header as sent.
 */
function requestedHost (rec: RequestRecord): string | undefined {
  try {
    return rec.request?.host ?? rec.host
  } catch {
    return undefined // the app's trustProxy function threw: no host rather than one it would not trust
  }
}

/**
 * The scheme the client used: Fastify's `request.protocol`, which is the X-Forwarded-Proto of a proxy the
 * app trusts (`trustProxy`: a load balancer that ends TLS talks plain HTTP to us for an HTTPS client), else
 * the connection's. Asked for kept requests only, as request.host is, so that server.address (the host the
 * client asked the proxy for) comes with its scheme and its default port. Only http or https is taken.
 */
function requestScheme (rec: RequestRecord): 'http' | 'https' {
  try {
    const protocol = rec.request?.protocol?.toLowerCase() // a scheme is case-insensitive (RFC 3986, 3.1)
    return protocol === 'https' || protocol === 'http' ? protocol : rec.scheme
  } catch {
    return rec.scheme // the app's trustProxy function threw
  }
}

/**
 * The TCP peer of a connection: a proxy's address behind a proxy, whatever it forwards. On the connection
 * span only, which every kept request links to: on each request span it cost ≈ 0.35 µs a request at 100 %
 * sampling for what is, without a proxy, client.address again.
 */
export function peerAttributes (conn: ConnectionRecord, a: Attributes): void {
  if (conn.peerAddress !== undefined) a[ATTR_NETWORK_PEER_ADDRESS] = conn.peerAddress
  if (conn.peerPort !== undefined) a[ATTR_NETWORK_PEER_PORT] = conn.peerPort
}

/** The request span's: HTTP semantic conventions, where it sits on its connection, why it was kept, its gaps. */
export function requestAttributes (rec: RequestRecord, tl: Timeline, rule: NonNullable<RequestRecord['keptBy']>, precision: Precision): Attributes {
  const conn = rec.conn
  const attributes: Attributes = {}
  const method = methodLabel(rec.method)
  attributes[ATTR_HTTP_REQUEST_METHOD] = method
  if (method !== rec.method) attributes[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = rec.method
  const scheme = requestScheme(rec)
  attributes[ATTR_URL_SCHEME] = scheme
  const path = urlPath(rec.target)
  if (path !== undefined) attributes[ATTR_URL_PATH] = path
  if (rec.userAgent !== undefined) attributes[ATTR_USER_AGENT_ORIGINAL] = rec.userAgent
  const client = clientAddress(rec)
  if (client !== undefined) attributes[ATTR_CLIENT_ADDRESS] = client
  const server = serverAddressOf(rec.target, requestedHost(rec), scheme)
  if (server !== undefined) {
    attributes[ATTR_SERVER_ADDRESS] = server.address
    if (server.port !== undefined) attributes[ATTR_SERVER_PORT] = server.port
  }
  attributes[ATTR_NETWORK_PROTOCOL_VERSION] = rec.protocolVersion
  // HTTP/2: nghttp2 reads the frames in C++, so no read stage; nor on a Node without the parser callbacks
  // (REQUEST_JOURNEY_PARSER_UNSEEN), where parse is unseen too. Said, rather than left to be guessed.
  if (conn.multiplexed || (Number.isNaN(rec.beginAt) && Number.isNaN(rec.headersAt))) attributes[ATTR.readSeen] = false
  attributes[ATTR.precision] = precision
  attributes[ATTR.samplingRule] = rule
  attributes[ATTR.listener] = conn.listener
  attributes[ATTR.connectionId] = conn.id
  attributes[ATTR.requestIndex] = rec.index
  attributes[ATTR.gapIdle] = roundNs(tl.idleBeforeRequestMs)
  attributes[ATTR.gapHooks] = roundNs(tl.hooksMs)
  if (tl.pipelinedMs > 0) attributes[ATTR.gapPipelined] = roundNs(tl.pipelinedMs)
  if (tl.errorHandlerMs > 0) attributes[ATTR.gapErrorHandler] = roundNs(tl.errorHandlerMs)
  if (rec.route !== UNMATCHED_ROUTE) attributes[ATTR_HTTP_ROUTE] = rec.route
  if (rec.status !== 0) attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = rec.status
  if (rec.aborted) attributes[ATTR.aborted] = true
  if (rec.abortedBy !== undefined) attributes[ATTR.abortedBy] = rec.abortedBy
  if (rec.queueFull) attributes[ATTR.queueFullAtStart] = true
  if (rec.beforeHooks) attributes[ATTR.beforeHooks] = true
  if (rec.headers !== undefined) Object.assign(attributes, rec.headers)
  return attributes
}

function acceptAttributes (conn: ConnectionRecord): Attributes {
  const k = conn.kernel
  const a: Attributes = {}
  a[ATTR.acceptQueueWait] = k !== undefined
  if (k === undefined) return a
  a[ATTR.acceptKernelWaitMs] = k.lastAckRecvMs
  a[ATTR.acceptBytesWaiting] = k.bytesReceived
  a[ATTR.tcpRttUs] = k.rttUs
  if (k.bytesReceived > 0) a[ATTR.acceptDataWaitMs] = k.lastDataRecvMs
  return a
}

export function stageAttributes (iv: Interval, rec: RequestRecord, precision: Precision): Attributes | undefined {
  switch (iv.stage) {
    case 'accept': return acceptAttributes(rec.conn)
    case 'tls': return tlsAttributes(rec.conn)
    case 'read': {
      const a: Attributes = {}
      a[ATTR.readIncludesDecrypt] = rec.scheme === 'https' && precision === 'default'
      if (!Number.isNaN(rec.kernelReadWaitMs)) a[ATTR.readKernelWaitMs] = rec.kernelReadWaitMs
      return a
    }
    case 'decode': {
      const a: Attributes = {}
      if (rec.contentType !== undefined) a[ATTR.contentType] = rec.contentType
      if (rec.contentEncoding !== undefined) a[ATTR.contentEncoding] = rec.contentEncoding
      if (!Number.isNaN(rec.requestBodyBytes)) a['http.request.body.size'] = rec.requestBodyBytes
      if (!Number.isNaN(rec.decodedBodyBytes)) a[ATTR.decodedBytes] = rec.decodedBodyBytes
      const received = markIn(iv.start, iv.end, rec.bodyEndAt)
      if (received !== undefined) a[ATTR.decodeBodyReceivedMs] = roundNs(received)
      const parsed = markIn(iv.start, iv.end, rec.bodyParsedAt)
      if (parsed !== undefined) a[ATTR.decodeBodyParsedMs] = roundNs(parsed)
      return a
    }
    case 'handler': {
      const a: Attributes = {}
      const sync = syncPartOf(iv.start, iv.end, rec.handlerReturnedAt)
      if (sync !== undefined) a[ATTR.handlerSyncMs] = roundNs(sync)
      if (rec.bodyArriving) a[ATTR.handlerBodyArriving] = true
      if (handlerWroteResponse(rec)) a[ATTR.handlerWroteResponse] = true
      return a
    }
    case 'serialize': return one(ATTR.serializeSkipped, rec.serializeSkipped)
    case 'write': {
      const a: Attributes = {}
      if (!Number.isNaN(rec.bytesWritten)) a[ATTR.bytesWritten] = rec.bytesWritten
      if (rec.backpressure !== undefined) a[ATTR.backpressure] = rec.backpressure
      if (!Number.isNaN(rec.writeUnackedBytes)) a[ATTR.writeUnackedBytes] = rec.writeUnackedBytes
      const encoding = responseEncoding(rec)
      if (encoding !== undefined) a[ATTR.responseContentEncoding] = encoding
      return a
    }
    default: return undefined
  }
}

/**
 * The Content-Encoding the response went out with: read when its span is built (kept requests only),
 * because a compressor sets it in an onSend hook that runs after the journey's (RequestRecord.reply).
 */
function responseEncoding (rec: RequestRecord): string | undefined {
  const value = rec.reply?.getHeader('content-encoding')
  if (value === undefined) return undefined
  const text = Array.isArray(value) ? value.join(', ') : String(value)
  return text === '' || text.toLowerCase() === 'identity' ? undefined : text.toLowerCase()
}

/**
 * Allowlisted response headers as `http.response.header.<name>` (string arrays, as the HTTP semantic
 * conventions ask), read from what went out, for kept requests only: nothing is copied per request.
 */
export function responseHeaderAttributes (rec: RequestRecord, names: readonly string[], a: Attributes): void {
  for (const h of names) {
    const v = rec.reply?.getHeader(h)
    if (v !== undefined) a[`http.response.header.${h}`] = Array.isArray(v) ? v : [String(v)]
  }
}

export function tlsAttributes (conn: ConnectionRecord): Attributes {
  const a: Attributes = {}
  a[ATTR.tlsResumed] = conn.tlsResumed
  if (conn.tlsProtocol !== undefined) {
    // Node says 'TLSv1.3'; the semantic conventions want name 'tls' and version '1.3'.
    a['tls.protocol.name'] = 'tls'
    a[ATTR.tlsProtocol] = conn.tlsProtocol.replace(/^TLSv/, '')
  }
  if (conn.tlsCipher !== undefined) a[ATTR.tlsCipher] = conn.tlsCipher
  if (conn.tlsAlpn !== undefined) a[ATTR.tlsAlpn] = conn.tlsAlpn
  if (conn.tlsSni !== undefined) a[ATTR.tlsSni] = conn.tlsSni
  return a
}

/** An attribute set of one key (filled by assignment: see the top of this file). */
export function one (key: string, value: Attributes[string]): Attributes {
  const a: Attributes = {}
  a[key] = value
  return a
}
