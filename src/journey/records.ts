// The records observers write into: plain numbers (monotonic marks, NaN = not observed) and a few strings.
// Observers never build telemetry; consumers read finished records (see publish.ts).
import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { KernelView } from './tcp-info.ts'
import type { Context } from '@opentelemetry/api'
import type { Timeline } from './timeline.ts'

export type Listener = string

/** What a request's end reads of its message: whether all of a body its headers announced has arrived. */
interface BodyMessage { readonly complete: boolean, readonly headers: IncomingHttpHeaders }

/**
 * The journey (createJourney) that observes a connection's server. The bus is one per process, so with two
 * journeys in a process each consumer must take only its own journey's records: otherwise each registry
 * counted the other app's requests too, and one journey's span consumer gave back the export-queue room
 * the other had held.
 */
export interface JourneyOwner {
  /** Head sampling when a request starts (the span consumer's start; nothing without tracing). */
  start: (rec: RequestRecord, headers: IncomingHttpHeaders) => void
  /** Whether this journey makes spans: only spans carry a connection's peer, so only then is it asked for. */
  traced: boolean
  /**
   * Its connections' sockets, from the server's 'connection' to their 'close'. journey.close() waits for
   * those already destroyed: a server's close() returns (and Fastify's onClose hooks run) as its last
   * connections are destroyed, but their requests cut off and the connections themselves end only at
   * their 'close', a loop turn later.
   */
  sockets: Set<Socket>
}

/** Whether a consumer of `owner` takes this connection's records: its own journey's, or all of them without an owner. */
export function ownedBy (conn: Pick<ConnectionRecord, 'owner'>, owner: JourneyOwner | undefined): boolean {
  return owner === undefined || conn.owner === owner
}

/** The reason of a connection error just published on channels.connectionError: its newest entry says which. */
export function latestError (conn: ConnectionRecord): string {
  return conn.errors[conn.errors.length - 1] ?? 'other'
}

/** A connection dropped at `maxConnections` (publish.ts): all there is of it is where it arrived. */
export type DroppedConnection = Pick<ConnectionRecord, 'listener' | 'owner'>

export interface ConnectionRecord {
  id: number
  listener: Listener
  /** The journey observing this connection's server; undefined for records made by hand (tests). */
  owner: JourneyOwner | undefined
  secure: boolean
  /**
   * HTTP/2: its requests are streams that interleave on it. No HTTP/1 parser marks (nghttp2 reads the
   * frames in C++), and no per-response byte count (the socket's bytes are every stream's).
   */
  multiplexed: boolean
  /** prepended 'connection' listener: the socket reached user space. */
  acceptAt: number
  /** appended 'connection' listener: Node's own connection set-up is done. */
  acceptedAt: number
  /** 'secureConnection': TLS handshake complete. */
  secureAt: number
  /** TCP_INFO at accept (undefined without the addon): the kernel-side wait before acceptAt. */
  kernel: KernelView | undefined
  /**
   * The TCP socket's file descriptor (-1: unknown), for asking the kernel about it later. Only while the
   * socket is open: a closed one's number may already belong to another.
   */
  fd: number
  tlsProtocol: string | undefined
  /** Cipher, ALPN protocol and SNI name: read for spans only, so undefined in a journey without tracing. */
  tlsCipher: string | undefined
  tlsAlpn: string | undefined
  tlsSni: string | undefined
  tlsResumed: boolean
  tlsFailure: string | undefined
  /**
   * Which side ended the connection first: `client` when its FIN (or its reset) came first, `server` when
   * the server ended or destroyed it (`connection: close` after a response, a timeout, an error, shutdown).
   * Set by the socket's 'end' or 'finish', whichever came first; decided at close when neither did.
   */
  closedBy: 'client' | 'server' | undefined
  /**
   * The peer's address and port as the socket saw them at accept (a proxy's, behind one that ends TCP).
   * Read for spans only: undefined in a journey without tracing (the app's `request.ip` is Fastify's own).
   */
  peerAddress: string | undefined
  peerPort: number | undefined
  closeAt: number
  /** Marks of the HTTP message currently being parsed (overwritten per message). */
  beginAt: number
  headersAt: number
  /** Fine mode: arrival of the latest plaintext chunk in JS, and of the ciphertext it came from (TLS). */
  chunkAt: number
  chunkCipherAt: number
  cipherAt: number
  /** Fine mode, TLS: ciphertext arrival of the chunk that completed the header block. */
  headersCipherAt: number
  /** Requests seen on this connection. The first one carries accept and tls. */
  requests: number
  /** Requests whose response has not finished yet (HTTP/1.1 answers in order; HTTP/2 in any order). */
  inflight: RequestRecord[]
  /** Of inflight: requests no journey hook has seen (RequestRecord.beforeHooks). */
  unclaimed: number
  /**
   * When the latest response on this connection finished. Node hands the socket to a response held back
   * behind it (pipelining) at that moment.
   */
  lastFinishAt: number
  /**
   * HTTP/1.x: when the socket's latest write returned with every byte in the kernel, NaN when the kernel had
   * not taken them all (hand-over.ts). Node reports such a write done a tick later, over TLS a loop turn
   * later: a response's write ends here rather than at its 'finish'.
   */
  handedAt: number
  /** HTTP/1.x: when the socket's latest write left bytes the kernel had not taken (settleBackpressure). */
  queuedAt: number
  errors: string[]
  bytesRead: number
  bytesWritten: number
  /** The socket's bytesWritten when its last response finished: where a response no onSend saw starts. */
  bytesWrittenAtFinish: number
  /** Span ids for the connection span, created only when a kept request links to it. */
  traceId: string | undefined
  spanId: string | undefined
  kept: boolean
}

export interface RequestRecord {
  conn: ConnectionRecord
  /** 1-based position on its connection. */
  index: number
  method: string
  /** The HTTP version the request was sent in (network.protocol.version: "1.0", "1.1" or "2"). */
  protocolVersion: ProtocolVersion
  /** The request-target as received, query included: only its path is ever emitted (urlPath). */
  target: string
  userAgent: string | undefined
  /**
   * The Fastify request, until the record is published (publishRequest clears it, so records that consumers
   * keep, such as the page's, never hold a request and its body): its `ip`, `host` and `protocol` are asked only
   * for kept requests, its `id` by a subscriber that logs the request. Undefined for a request answered before its hooks.
   */
  request: { readonly ip: string | undefined, readonly id: string, readonly host: string, readonly protocol: string | undefined } | undefined
  /** The Host (or :authority) of a request answered before its hooks, read when first seen; see `request` for the others. */
  host: string | undefined
  /** Its response, for as long as `request` (cleared with it): a request cut off keeps the status it had sent. */
  response: { readonly headersSent: boolean, readonly statusCode: number, readonly req?: BodyMessage, readonly socket?: { readonly destroyed: boolean, readonly bytesWritten: number } | null } | undefined
  /**
   * Its Fastify reply, for as long as `request`: the headers Fastify sent are the reply's (Node's writeHead
   * takes them without storing them on the response), so a header a later onSend hook set is read here;
   * its getHeader falls back to the response's, where code that hijacked the reply may have set one.
   */
  reply: { getHeader: (name: string) => number | string | string[] | undefined } | undefined
  route: string
  scheme: 'http' | 'https'
  status: number
  // Marks, in the order they happen (docs/stages.md says what each one is).
  acceptAt: number
  acceptedAt: number
  secureAt: number
  beginAt: number
  /**
   * Sampled requests (and fine mode) with the TCP_INFO addon: how long this request's last bytes had been
   * in the kernel before the parser saw its first byte, in ms (whole jiffies). NaN when not measured.
   */
  kernelReadWaitMs: number
  /**
   * Kept requests with responses of 16 KiB or more, read by the span consumer as the response finishes: the connection's bytes the
   * kernel still held unacknowledged by the client (sent or queued) when the write stage ended. NaN: not read.
   */
  writeUnackedBytes: number
  /** Fine mode on TLS: ciphertext of the header block's last chunk arrived; decrypt runs from here to headersAt. */
  decryptStartAt: number
  headersAt: number
  requestAt: number
  decodeStartAt: number
  /**
   * Traced journeys, requests with a body: the body had been read off the connection to its end (the raw
   * request's 'end'), by Fastify's body reader or a decompressor in front of it (ATTR.decodeBodyReceivedMs).
   */
  bodyEndAt: number
  /**
   * Traced journeys, a body that had all been read by then: Fastify's content-type parser had made
   * `request.body` of it (the journey's preValidation hook, the first), so what follows in decode is
   * preValidation hooks and schema validation (ATTR.decodeBodyParsedMs).
   */
  bodyParsedAt: number
  decodeEndAt: number
  handlerStartAt: number
  /**
   * Traced journeys: the route handler's call returned — its synchronous part, which held the event loop,
   * ended (an async handler's at its first await, even of a settled promise) (ATTR.handlerSyncMs).
   */
  handlerReturnedAt: number
  handlerEndAt: number
  serializeEndAt: number
  /**
   * The response could go to the socket: onSend, or for a response pipelined behind an earlier one on its
   * connection, the moment Node handed it the socket (that response finished). NaN while still held back.
   */
  writeStartAt: number
  finishAt: number
  endAt: number
  /**
   * Fastify took an error for this request (its first onError): a body that is not JSON, a failed
   * validation, a hook or handler that threw. The stage running then ends there; the error handler's time
   * until the next stage is the error_handler gap. NaN without an error.
   */
  errorAt: number
  /** What Fastify took at errorAt (an Error, as a rule): recorded as an exception event on kept traces. */
  error: unknown
  /** Node had not parsed all of the body when the handler started: on its way, or right behind the headers (ATTR.handlerBodyArriving). */
  bodyArriving: boolean
  serializeSkipped: boolean
  /**
   * Streamed bodies only (the handler's, a web stream, or one a later onSend made, as a compressor does, of a
   * body of at least 1 KiB): whether a write left bytes the kernel would not take (settleBackpressure).
   * Undefined for one-piece bodies and on HTTP/2.
   */
  backpressure: boolean | undefined
  /** The socket's bytesWritten when this response could start writing (onSend); NaN when no onSend ran. */
  bytesWrittenStart: number
  bytesWritten: number
  requestBodyBytes: number
  /** Body bytes after decompression (counted only for encoded bodies; otherwise equal to the wire bytes). */
  decodedBodyBytes: number
  contentType: string | undefined
  contentEncoding: string | undefined
  /** Allowlisted request headers as span attributes (JOURNEY_RECORD_HEADERS); nothing else is kept. */
  headers: Record<string, string[]> | undefined
  aborted: boolean
  /**
   * Who cut an aborted request off: the side that closed its connection first (`closedBy`). Undefined when
   * it ended while neither side had: an HTTP/2 stream reset on a connection that lives on, where Node does
   * not say which side reset it.
   */
  abortedBy: 'client' | 'server' | undefined
  /**
   * Answered (or closed) before the journey's onRequest hook ran: Node's own 400, 417 or 503, Fastify's
   * bad-URL 400 or its 503 while closing, a CONNECT nobody handles. Only read, parse and write are seen.
   */
  beforeHooks: boolean
  /** On a route the journey was told to ignore (ignoreRoutes): measured like any, published to no consumer. */
  ignored: boolean
  /** Until such a request is answered or claimed: its IncomingMessage, to tell which response is its. */
  message: object | undefined
  // Tracing: decided at request start; ids exist only for head-sampled requests until the end.
  sampled: boolean
  /** Head-sampled, but the export queue had no room at its start: it ran untraced (consume-spans.ts). */
  queueFull: boolean
  /** Spans of room a head-sampled request holds in the export queue until its end (consume-spans.ts). */
  reserved: number
  keptBy: 'head' | 'slow' | 'error' | undefined
  traceId: string | undefined
  spanId: string | undefined
  parentContext: Context | undefined
  /**
   * Active while the handler runs: for a sampled request, so the handler's own spans are children of the
   * request span; for an unsampled one (once the app starts spans of its own), so they are not recorded.
   */
  context: Context | undefined
  /** Built once when the record is finished (timelineOf), then shared by the consumers. */
  timeline: Timeline | undefined
}

let nextConnectionId = 1

export function newConnectionRecord (listener: Listener, secure: boolean, acceptAt: number, owner?: JourneyOwner): ConnectionRecord {
  return {
    id: nextConnectionId++,
    listener,
    owner,
    secure,
    multiplexed: false,
    acceptAt,
    acceptedAt: NaN,
    secureAt: NaN,
    kernel: undefined,
    fd: -1,
    tlsProtocol: undefined,
    tlsCipher: undefined,
    tlsAlpn: undefined,
    tlsSni: undefined,
    tlsResumed: false,
    tlsFailure: undefined,
    closedBy: undefined,
    peerAddress: undefined,
    peerPort: undefined,
    closeAt: NaN,
    beginAt: NaN,
    headersAt: NaN,
    chunkAt: NaN,
    chunkCipherAt: NaN,
    cipherAt: NaN,
    headersCipherAt: NaN,
    requests: 0,
    inflight: [],
    unclaimed: 0,
    lastFinishAt: NaN,
    handedAt: NaN,
    queuedAt: NaN,
    errors: [],
    bytesRead: 0,
    bytesWritten: 0,
    bytesWrittenAtFinish: 0,
    traceId: undefined,
    spanId: undefined,
    kept: false
  }
}

export type ProtocolVersion = '1.0' | '1.1' | '2'

/**
 * A finished request's error as the semantic conventions' `error.type` says it, on its span and in
 * http_server_request_duration_seconds alike: `aborted` for one cut off before its response finished (also
 * after a 200 went out: a download or an SSE stream the client left), else its status when 5xx, else none.
 */
export function errorTypeOf (rec: Pick<RequestRecord, 'aborted' | 'status'>): string | undefined {
  return rec.aborted ? 'aborted' : rec.status >= 500 ? String(rec.status) : undefined
}

/**
 * The version a request came in, as OpenTelemetry's network.protocol.version writes it. HTTP/2 is the
 * connection's framing, not the request line's word: llhttp also accepts `HTTP/2.0` and `HTTP/0.9` request
 * lines on an HTTP/1 connection, and Node answers them in HTTP/1 with HTTP/1.0's connection rules (llhttp
 * keeps a connection alive by default only for 1.1), so they count as 1.0 — labelled 2 they put HTTP/1
 * traffic in every HTTP/2 panel.
 */
export function protocolVersionOf (conn: Pick<ConnectionRecord, 'multiplexed'>, message: { readonly httpVersionMajor: number, readonly httpVersionMinor: number }): ProtocolVersion {
  if (conn.multiplexed) return '2'
  return message.httpVersionMajor === 1 && message.httpVersionMinor === 1 ? '1.1' : '1.0'
}

export function newRequestRecord (conn: ConnectionRecord, method: string, target: string, protocolVersion: ProtocolVersion, requestAt: number): RequestRecord {
  const index = ++conn.requests
  const first = index === 1
  const rec: RequestRecord = {
    conn,
    index,
    method,
    protocolVersion,
    target,
    userAgent: undefined,
    request: undefined,
    host: undefined,
    response: undefined,
    reply: undefined,
    route: '',
    scheme: conn.secure ? 'https' : 'http',
    status: 0,
    acceptAt: first ? conn.acceptAt : NaN,
    acceptedAt: first ? conn.acceptedAt : NaN,
    secureAt: first ? conn.secureAt : NaN,
    beginAt: conn.beginAt,
    kernelReadWaitMs: NaN,
    writeUnackedBytes: NaN,
    decryptStartAt: conn.headersCipherAt,
    headersAt: conn.headersAt,
    requestAt,
    decodeStartAt: NaN,
    bodyEndAt: NaN,
    bodyParsedAt: NaN,
    decodeEndAt: NaN,
    handlerStartAt: NaN,
    handlerReturnedAt: NaN,
    handlerEndAt: NaN,
    serializeEndAt: NaN,
    writeStartAt: NaN,
    finishAt: NaN,
    endAt: NaN,
    errorAt: NaN,
    error: undefined,
    bodyArriving: false,
    serializeSkipped: false,
    backpressure: undefined,
    bytesWrittenStart: NaN,
    bytesWritten: 0,
    requestBodyBytes: NaN,
    decodedBodyBytes: NaN,
    contentType: undefined,
    contentEncoding: undefined,
    headers: undefined,
    aborted: false,
    abortedBy: undefined,
    beforeHooks: false,
    ignored: false,
    message: undefined,
    sampled: false,
    queueFull: false,
    reserved: 0,
    keptBy: undefined,
    traceId: undefined,
    spanId: undefined,
    parentContext: undefined,
    context: undefined,
    timeline: undefined
  }
  // The parser marks belong to this message now; the next message overwrites them.
  conn.beginAt = NaN
  conn.headersAt = NaN
  conn.headersCipherAt = NaN
  conn.inflight.push(rec)
  return rec
}
