// read and parse marks from Node's HTTP/1.1 parser.
//
// Node parses natively (llhttp consumes the socket's handle), so no JS 'data' listener sees request bytes.
// The per-connection parser calls back into JS at message begin and at headers complete; wrapping those two
// callbacks is the cheapest way in (≈0.6 µs/request measured here, see ../shared/field-notes.md).
// They are undocumented internals (`_http_common`'s HTTPParser and its kOn* slots): checkParserInternals()
// says whether this Node still has them, and test/journey/internals.test.ts fails loudly when it does not.
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { now } from './clock.ts'
import type { ConnectionRecord, RequestRecord } from './records.ts'

export const kConnection = Symbol('request-journey.connection')

type Parser = Record<number, unknown> & { socket?: Socket | null }
type HeadersComplete = (this: Parser, ...args: unknown[]) => unknown
type SocketWithRecord = Socket & { [kConnection]?: ConnectionRecord, parser?: Parser | null }

interface ParserInternals { kOnMessageBegin: number, kOnHeadersComplete: number, kOnBody: number | undefined }

function loadInternals (): ParserInternals | undefined {
  try {
    // A builtin, so no require() relative to this file (a CommonJS bundle has no import.meta.url to make one).
    const { HTTPParser } = process.getBuiltinModule('_http_common') as { HTTPParser?: Record<string, unknown> }
    const begin = HTTPParser?.kOnMessageBegin
    const headers = HTTPParser?.kOnHeadersComplete
    if (typeof begin !== 'number' || typeof headers !== 'number') return undefined
    const body = HTTPParser?.kOnBody
    return { kOnMessageBegin: begin, kOnHeadersComplete: headers, kOnBody: typeof body === 'number' ? body : undefined }
  } catch {
    return undefined
  }
}

const internals = loadInternals()

/** Why read/parse cannot be measured on this Node, or undefined when they can. */
export function checkParserInternals (): string | undefined {
  return internals === undefined
    ? `_http_common.HTTPParser kOn* slots not found on Node ${process.version}: read and parse are not measured`
    : undefined
}

function recordOf (parser: Parser): ConnectionRecord | undefined {
  return (parser.socket as SocketWithRecord | null | undefined)?.[kConnection]
}

// Module-level functions, not per-connection closures: parsers are pooled across servers, so a parser
// that once served an observed connection may later serve an unobserved one; then these do nothing.
// In fine mode chunkAt holds the arrival of the chunk being parsed (see observeChunks); in default mode
// it is NaN and the parser callback's own time is the best mark there is.
function onMessageBegin (this: Parser): void {
  const conn = recordOf(this)
  if (conn === undefined) return
  if (Number.isNaN(conn.chunkAt)) conn.beginAt = now()
  else conn.beginAt = Number.isNaN(conn.chunkCipherAt) ? conn.chunkAt : conn.chunkCipherAt
}

let originalHeadersComplete: HeadersComplete | undefined

/** Told of a message no journey hook took while Node handed it over; see onUnclaimedMessage. */
export type UnclaimedObserver = (message: IncomingMessage, conn: ConnectionRecord) => void
let unclaimed: UnclaimedObserver | undefined

/**
 * Node hands a parsed request over from inside this callback, and Fastify runs the journey's onRequest
 * hook in the same call, which takes the parser's marks (newRequestRecord). Marks still here when it
 * returns belong to a request no journey hook saw: Node answered it itself (400 for a missing Host, 417,
 * 503 for maxRequestsPerSocket), Fastify did before its hooks (400 for a malformed URL, 503 while closing),
 * or the connection left HTTP (CONNECT, Upgrade). The Fastify observer decides what that is.
 */
export function onUnclaimedMessage (observer: UnclaimedObserver | undefined): void {
  unclaimed = observer
}

function onHeadersComplete (this: Parser & { incoming?: IncomingMessage | null }, a: unknown, b: unknown, c: unknown,
  d: unknown, e: unknown, f: unknown, g: unknown, h: unknown, i: unknown): unknown {
  const conn = recordOf(this)
  if (conn !== undefined) {
    if (Number.isNaN(conn.chunkAt)) {
      conn.headersAt = now()
    } else {
      conn.headersAt = conn.chunkAt
      conn.headersCipherAt = conn.chunkCipherAt
    }
  }
  const result = originalHeadersComplete!.call(this, a, b, c, d, e, f, g, h, i)
  if (conn !== undefined && !Number.isNaN(conn.headersAt) && this.incoming != null) {
    if (unclaimed !== undefined) unclaimed(this.incoming, conn)
    else warnNoPlugin()
  }
  return result
}

let noPluginWarned = false
/**
 * An observed server, but no journey plugin registered in this process: connections are measured and
 * requests are not, with nothing else to say why (no route is unwrapped, no server unobserved).
 */
function warnNoPlugin (): void {
  if (noPluginWarned) return
  noPluginWarned = true
  process.emitWarning('requests arrive on a server the journey observes, but no journey plugin is registered, so only their connections are measured: await app.register(journey.plugin) before your routes', { code: 'REQUEST_JOURNEY_NO_PLUGIN' })
}

/**
 * Wraps the parser of a socket Node's HTTP server has just set up. Returns false (and changes nothing)
 * when the parser is missing or not the shape this code knows.
 */
export function observeParser (socket: SocketWithRecord): boolean {
  const parser = socket.parser
  if (internals === undefined || parser == null) return false
  const current = parser[internals.kOnHeadersComplete]
  if (current !== onHeadersComplete) {
    if (typeof current !== 'function') return false
    if (originalHeadersComplete === undefined) originalHeadersComplete = current as HeadersComplete
    else if (current !== originalHeadersComplete) return false
    parser[internals.kOnHeadersComplete] = onHeadersComplete
  }
  // Node's server leaves this slot empty; anything else means someone else uses it: leave it alone.
  const begin = parser[internals.kOnMessageBegin]
  if (begin != null && begin !== onMessageBegin) return false
  parser[internals.kOnMessageBegin] = onMessageBegin
  return true
}

/** What a counted body adds to: its request's record (RequestRecord's fields). */
interface BodyCount { requestBodyBytes: number, endAt: number }
const kBodyCount = Symbol('request-journey.body-count')
type Incoming = IncomingMessage & { [kBodyCount]?: BodyCount }
type OnBody = (this: Parser & { incoming?: Incoming | null }, b: Buffer) => unknown
let originalOnBody: OnBody | undefined

// Node's parser hands each piece of a request body to JS through this slot, chunked framing removed: the
// only place a body's size can be seen without reading the body alongside the app (a stream in front of
// Fastify's payload would stall a handler that reads request.raw itself). Counted until the record ends.
function onBody (this: Parser & { incoming?: Incoming | null }, b: Buffer): unknown {
  const count = this.incoming?.[kBodyCount]
  if (count !== undefined && Number.isNaN(count.endAt)) count.requestBodyBytes += b.length
  return originalOnBody!.call(this, b)
}

/**
 * Counts the body of `message` (an HTTP/1.1 request sent without Content-Length: chunked) into
 * `count.requestBodyBytes`, from 0, as the parser hands its bytes over. The parser's body callback is
 * wrapped only once a connection's parser carries such a body (and stays wrapped on the pooled parser,
 * counting nothing for other requests), so requests with a Content-Length pay nothing. False, counting
 * nothing, when this Node's parser is not the shape this code knows.
 */
export function countBody (message: IncomingMessage, count: BodyCount): boolean {
  const parser = (message.socket as SocketWithRecord | null)?.parser
  if (internals?.kOnBody === undefined || parser == null) return false
  const slot = internals.kOnBody
  const current = parser[slot]
  if (current !== onBody) {
    if (typeof current !== 'function') return false
    if (originalOnBody === undefined) originalOnBody = current as OnBody
    else if (current !== originalOnBody) return false
    parser[slot] = onBody
  }
  ;(message as Incoming)[kBodyCount] = count
  count.requestBodyBytes = 0
  return true
}

/**
 * At a request's end: an HTTP/1.1 Content-Length says how many bytes the client meant to send, not how many
 * came. Until Node's parser has had them all (`complete`) — a 413 answered on the header alone, an upload
 * cut off — the size is unknown, since such bodies are not counted (counting would wrap the parser's body
 * callback on every connection), so it is left unobserved rather than recorded as the claim: one
 * `Content-Length: 99999999999` added 100 GB to the histogram's sum. (HTTP/2 bodies are counted as their
 * DATA arrive: request-end.ts.)
 */
export function settleDeclaredBody (rec: RequestRecord): void {
  const message = rec.response?.req
  if (message !== undefined && !message.complete && !rec.conn.multiplexed && message.headers['content-length'] !== undefined) rec.requestBodyBytes = NaN
}

function onChunk (this: SocketWithRecord): void {
  const conn = this[kConnection]
  if (conn === undefined) return
  conn.chunkAt = now()
  conn.chunkCipherAt = conn.cipherAt
}

/**
 * Fine mode: timestamp every chunk before Node parses it. Adding a 'data' listener to a socket Node's HTTP
 * server has set up makes Node stop parsing natively (`unconsume`) and parse each chunk from JS, right
 * after this listener. Measured here at ≈ +12% CPU per small request; it separates waiting for bytes
 * (read) from parsing them (parse).
 */
export function observeChunks (socket: SocketWithRecord): void {
  socket.prependListener('data', onChunk)
}
