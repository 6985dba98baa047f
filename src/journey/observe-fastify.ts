// decode, handler, serialize and write marks from Fastify's hooks, and the request record's birth.
// Registered as a plugin that skips encapsulation, before the app's routes, so its hooks run first
// in every phase and its onRoute hook sees every route. Where a record ends: request-end.ts; requests
// answered before these hooks ran: observe-unclaimed.ts.
import diagnostics from 'node:diagnostics_channel'
import { pipeline, Transform, type Readable } from 'node:stream'
import { Socket } from 'node:net'
import { context } from '@opentelemetry/api'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { now } from './clock.ts'
import { readTcpInfo } from './tcp-info.ts'
import { newRequestRecord, protocolVersionOf, type ConnectionRecord, type RequestRecord } from './records.ts'
import { countBody, kConnection, onUnclaimedMessage } from './observe-parser.ts'
import { onUnclaimedStream } from './observe-http2.ts'
import { UNMATCHED_ROUTE } from './stages.ts'
import { knowMethod } from './http-method.ts'
import { warnIgnoredUnknown, warnTracedAfter, warnUnobserved, warnUnwrapped } from './misuse-warnings.ts'
import { serverTimingValue } from './server-timing.ts'
import { finish, finishUpgraded, kRecord, startStream, type Response } from './request-end.ts'
import { answeredBeforeHooks, claim, firstHeader, onUnclaimed, onUnclaimedH2 } from './observe-unclaimed.ts'

export interface FastifyObserverOptions {
  /** Fine mode: measure the kernel read wait of every request, not only sampled ones. */
  fine?: boolean
  /** Tracing is on: then the order of other tracing plugins matters (warnTracedAfter). */
  traced?: boolean
  /** Send each response's stages so far as a Server-Timing header (server-timing.ts); a function decides per request. */
  serverTiming?: boolean | ((request: FastifyRequest) => boolean) | undefined
  /** Route templates whose requests are published to no consumer and sent no Server-Timing. */
  ignoreRoutes?: ReadonlySet<string> | undefined
}

/**
 * How long the request's bytes sat in the kernel before the parser reached them. TCP_INFO's
 * last_data_recv is the age of the newest data packet now (at requestAt); the parser saw the first byte
 * (requestAt - beginAt) ago; the difference is the wait. For a request in one packet that is exact to a
 * jiffy; for one spread over packets it is the wait of the last packet.
 */
function kernelReadWait (socket: Socket, rec: RequestRecord): number {
  if (Number.isNaN(rec.beginAt)) return NaN
  // On HTTPS the request's socket is the TLSSocket; TCP_INFO belongs to the TCP socket under it (absent
  // in fine mode, where TLS runs over a JS stream: not measured there).
  const k = readTcpInfo((socket as Socket & { _parent?: Socket })._parent ?? socket)
  if (k === undefined || k.bytesReceived === 0) return NaN
  return Math.max(0, Math.round(k.lastDataRecvMs - (rec.requestAt - rec.beginAt)))
}

// 'finish' on the response: every byte was handed to the kernel. The channel fires for every
// http(s).Server in the process; a response without a record answers a request no journey hook saw
// (answeredBeforeHooks), or belongs to a server nobody observes.
function onResponseFinish (message: unknown): void {
  const res = (message as { response: Response }).response
  const rec = res[kRecord] ?? answeredBeforeHooks(res)
  if (rec === undefined) return
  finish(rec, res.statusCode, res.socket)
}

const isUpgrade = (request: FastifyRequest): boolean => (request.raw as { upgrade?: boolean }).upgrade === true

/**
 * Whether the request's framing says a body follows its headers: a Content-Length above 0, a
 * Transfer-Encoding, or on HTTP/2 a stream its HEADERS frame did not end. `complete` alone cannot say: with
 * synchronous hooks Fastify calls a GET's handler from Node's 'request' event, before the parser has seen
 * that message's (empty) end, and on HTTP/2 a request is complete only once read to its end.
 */
function bodyFollows (request: FastifyRequest): boolean {
  const headers = request.headers
  const length = headers['content-length']
  if (length !== undefined) return Number(length) > 0
  if (headers['transfer-encoding'] !== undefined) return true
  return (request.raw as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false
}

type BodyStream = Readable & { [kRecord]?: RequestRecord }

/**
 * The raw request's 'end': its body was read off the connection to the last byte. Listened to on the raw
 * request (IncomingMessage or Http2ServerRequest), not on the payload a decompressor may have replaced:
 * what the client sent, not what it decoded to. Why 'end' and not the HTTP/1 parser's message-complete
 * callback: it is public, and the same on HTTP/2; Fastify's reader never pauses, so the two differ by a
 * tick — except behind a decompressor that falls behind, which then reads the last bytes later.
 */
function watchBodyEnd (raw: BodyStream, rec: RequestRecord): void {
  raw[kRecord] = rec
  raw.on('end', onBodyEnd)
}

function onBodyEnd (this: BodyStream): void {
  const rec = this[kRecord]
  if (rec !== undefined && Number.isNaN(rec.bodyEndAt)) rec.bodyEndAt = now()
}

/** A handler called once a connection has switched protocols, as @fastify/websocket calls one: (socket, request). */
type WsHandler = (this: FastifyInstance, socket: unknown, request: FastifyRequest) => unknown

/** The handler of the new protocol: its request ends once the handler's synchronous part has run. */
function wrapUpgraded (handler: WsHandler): WsHandler {
  return function journeyUpgraded (this: FastifyInstance, socket: unknown, request: FastifyRequest) {
    const rec = (request as { journey?: RequestRecord | null } | undefined)?.journey
    if (rec == null) return handler.call(this, socket, request)
    try {
      return rec.context === undefined ? handler.call(this, socket, request) : context.with(rec.context, handler, this, socket, request)
    } finally {
      finishUpgraded(rec, request.raw.socket)
    }
  }
}

function markHandlerStart (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const rec = request.journey
  if (rec !== null) rec.handlerStartAt = now()
  done()
}

/** A route's hook option with `hook` appended (route-level hooks run after the instance's). */
function appendHook<T> (hooks: T | T[] | undefined, hook: T): T[] {
  return hooks === undefined ? [hook] : Array.isArray(hooks) ? [...hooks, hook] : [hooks, hook]
}


/**
 * A pipelined response's turn: Node holds a response back while an earlier one on the same connection is
 * unfinished (HTTP/1.1 answers in order) and hands it the socket, with this event, when that one finishes.
 * Its write starts here; the wait before it is no write of its own (journey.gap.pipelined_ms).
 */
function onPipelinedSocket (this: Response, socket: Socket): void {
  const rec = this[kRecord]
  if (rec === undefined) return
  rec.writeStartAt = now()
  rec.bytesWrittenStart = socket.bytesWritten
}

/**
 * Smallest one-piece body watched for becoming a stream after the journey's onSend: @fastify/compress
 * compresses nothing under its default threshold (1 KiB), and streams only bodies over its syncThreshold.
 * Smaller bodies, the most common, cost no listener.
 */
const MAY_BE_STREAMED = 1024

/** Listened for only when the journey's onSend saw no stream, so backpressure is still undefined here. */
function onPipe (this: Response): void {
  const rec = this[kRecord]
  if (rec === undefined) return
  rec.backpressure = false // streamed: settled at its end (settleBackpressure)
}

/** A web body Fastify streams: a ReadableStream, or a fetch Response with a body (a proxied upstream's). */
function isWebBody (payload: unknown): boolean {
  if (typeof payload !== 'object' || payload === null) return false
  if (typeof (payload as { getReader?: unknown }).getReader === 'function') return true
  return Object.prototype.toString.call(payload) === '[object Response]' && (payload as { body: unknown }).body != null
}

/**
 * A streamed body's error: the first error of its request, like the onError hook's (which takes it first
 * when the headers were not yet out). A premature close is no error of the body's (Fastify logs it as
 * a close): its consumer went away.
 */
function onStreamError (rec: RequestRecord, error: Error & { code?: string }): void {
  if (error.code === 'ERR_STREAM_PREMATURE_CLOSE' || !Number.isNaN(rec.errorAt) || !Number.isNaN(rec.endAt)) return
  rec.errorAt = now()
  rec.error = error
}

/**
 * Counts body bytes after whatever preParsing hooks decoded them (e.g. @fastify/compress), for the
 * decode span. Only for encoded bodies: an identity body's decoded size is its Content-Length.
 */
function countDecoded (request: FastifyRequest, _reply: FastifyReply, payload: Readable, done: (err: null, p: Readable) => void): void {
  const rec = request.journey
  if (rec === null || rec.contentEncoding === undefined || (payload as unknown) === request.raw) return done(null, payload)
  rec.decodedBodyBytes = 0
  const counter = new Transform({
    transform (chunk: Buffer, _enc, cb) { rec.decodedBodyBytes += chunk.length; cb(null, chunk) }
  })
  // Fastify compares this (set by decompressors) with Content-Length; keep it visible through the counter.
  Object.defineProperty(counter, 'receivedEncodedLength', { get: () => (payload as { receivedEncodedLength?: number }).receivedEncodedLength })
  pipeline(payload, counter, () => {})
  done(null, counter)
}

/** Adds the journey's metrics to a Server-Timing header the app may have set already (one list, comma-joined). */
function addServerTiming (reply: FastifyReply, value: string): void {
  const prior = reply.getHeader('server-timing')
  if (prior === undefined || prior === '') reply.header('server-timing', value)
  else reply.header('server-timing', `${Array.isArray(prior) ? prior.join(', ') : String(prior)}, ${value}`)
}

let subscribers = 0

/** Fastify's standard bodyless methods (an app can change them with addHttpMethod; then decoded sizes on such a route are not counted). */
const BODYLESS = new Set(['GET', 'HEAD', 'TRACE'])

/** Marks a route whose handler the journey wrapped (onRoute), so a request on an unwrapped one is said. */
const kWrapped = Symbol('request-journey.wrapped')
/** Marks a route in ignoreRoutes (onRoute), read from its config per request instead of a lookup by URL. */
const kIgnored = Symbol('request-journey.ignored')
type RouteMarks = { [kWrapped]?: true, [kIgnored]?: true } | undefined

export function observeFastify (fastify: FastifyInstance, opts: FastifyObserverOptions): void {
  const serverTiming = opts.serverTiming === true ? () => true : typeof opts.serverTiming === 'function' ? opts.serverTiming : undefined
  fastify.decorateRequest('journey', null)
  const traced = opts.traced === true
  // Which of ignoreRoutes some route has: the rest are said once the app is ready (no route comes later).
  const ignoredSeen = new Set<string>()
  if (opts.ignoreRoutes !== undefined) {
    const ignoreRoutes = opts.ignoreRoutes
    fastify.addHook('onReady', (done) => {
      warnIgnoredUnknown([...ignoreRoutes].filter(url => !ignoredSeen.has(url)))
      done()
    })
  }
  if (traced) warnTracedAfter(fastify)
  if (subscribers++ === 0) {
    diagnostics.subscribe('http.server.response.finish', onResponseFinish)
    onUnclaimedMessage(onUnclaimed)
    onUnclaimedStream(onUnclaimedH2)
  }
  fastify.addHook('onClose', (_instance, done) => {
    if (--subscribers === 0) {
      diagnostics.unsubscribe('http.server.response.finish', onResponseFinish)
      onUnclaimedMessage(undefined)
      onUnclaimedStream(undefined)
    }
    done()
  })

  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const socket = request.raw.socket as (Socket & { [kConnection]?: ConnectionRecord }) | null
    const conn = socket?.[kConnection]
    if (conn === undefined) {
      // inject()'s sockets are not real ones: only a real connection means a server nobody observes.
      if (socket instanceof Socket) warnUnobserved()
      return done()
    }
    const claimed = conn.unclaimed !== 0 ? claim(conn, request.raw) : undefined
    // The target as received: an app's rewriteUrl has already replaced request.url (Fastify keeps the
    // client's in raw.originalUrl then), and url.path names what the client asked for, not where it was routed.
    const raw = request.raw as typeof request.raw & { originalUrl?: string }
    const rec = claimed ?? newRequestRecord(conn, request.method, raw.originalUrl ?? request.url, protocolVersionOf(conn, raw), now())
    rec.request = request
    rec.response = reply.raw
    rec.reply = reply
    const route = request.routeOptions
    rec.route = route.url ?? UNMATCHED_ROUTE
    if (route.url !== undefined) {
      const marks = route.config as RouteMarks
      if (marks?.[kWrapped] !== true) warnUnwrapped(rec.method, route.url)
      // Not a claimed record: it was head-sampled when first seen and may hold export room that only its
      // publication gives back (only a hook deferring the journey's makes those: LATE_HOOK).
      else if (marks[kIgnored] === true && claimed === undefined) rec.ignored = true
    }
    const headers = request.headers
    rec.userAgent = headers['user-agent']
    rec.contentType = firstHeader(headers['content-type'])
    rec.contentEncoding = firstHeader(headers['content-encoding'])
    // A Content-Length holds only if the whole body arrives by the request's end (settleDeclaredBody). A body
    // without one (HTTP/1.1 chunked) is counted as it arrives; on HTTP/2 every body is (startStream).
    const length = headers['content-length']
    if (length !== undefined) rec.requestBodyBytes = Number(length)
    else if (headers['transfer-encoding'] !== undefined && !conn.multiplexed) countBody(request.raw, rec)
    request.journey = rec
    ;(reply.raw as Response)[kRecord] = rec
    if (conn.multiplexed) startStream(rec, request.raw, reply.raw)
    // Head sampling by the journey observing the server (this plugin's own, unless an app mixed two). A
    // claimed record was decided when first seen (onUnclaimed): deciding again held its export room twice.
    if (claimed === undefined && !rec.ignored) conn.owner?.start(rec, headers)
    // One TCP_INFO call (≈1.5 µs) only where a span will show it: sampled requests, or fine mode.
    if ((rec.sampled || (opts.fine === true && !rec.ignored)) && socket !== null) rec.kernelReadWaitMs = kernelReadWait(socket, rec)
    done()
  })

  fastify.addHook('preParsing', (request, _reply, payload, done) => {
    const rec = request.journey
    if (rec !== null) {
      rec.decodeStartAt = now()
      // A listener per request with a body, so only in traced journeys: their spans (and page) show it.
      if (traced && bodyFollows(request)) watchBodyEnd(request.raw as BodyStream, rec)
    }
    done(null, payload)
  })

  // Parsing and validating a body are both decode, and either can be the costly part (a schema's maxLength
  // on a 900 KB string: 2.5 ms to validate, 0.8 to parse). Fastify runs preValidation hooks right after its
  // content-type parser has made request.body, and this one first: the parse ends here. Traced journeys
  // only (their spans and page show it), and only for a body read to its end by now — not one the handler
  // reads itself (multipart), whose parser only handed it on.
  if (traced) {
    fastify.addHook('preValidation', (request, _reply, done) => {
      const rec = request.journey
      if (rec !== null && !Number.isNaN(rec.bodyEndAt)) rec.bodyParsedAt = now()
      done()
    })
  }

  fastify.addHook('preHandler', (request, _reply, done) => {
    const rec = request.journey
    // The first time only: a handler that passes the request on with reply.callNotFound() (@fastify/static,
    // for a missing file) has Fastify run the not-found handler's preHandler hooks, this one among them —
    // that is still the handler stage's time, not the decode's.
    if (rec !== null && Number.isNaN(rec.decodeEndAt)) {
      rec.decodeEndAt = now()
      // An identity body decodes to itself — once it has all arrived: a body the handler reads itself
      // (multipart) is still arriving here, and decode never saw it (a chunked one's count is still growing).
      // (A request without a body — most GETs — reads nothing more here.)
      if (rec.contentEncoding === undefined && !Number.isNaN(rec.requestBodyBytes) && request.raw.complete) rec.decodedBodyBytes = rec.requestBodyBytes
    }
    done()
  })

  fastify.addHook('preSerialization', (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, p: unknown) => void) => {
    const rec = request.journey
    if (rec !== null) rec.handlerEndAt = now()
    done(null, payload)
  })

  // Fastify runs onError hooks before the error handler (your setErrorHandler, or its default, which logs
  // the error and serializes it): the stage that was running ends here, not at onSend after all that.
  // Only the first: an error handler that fails makes Fastify call the next one, still error handling.
  fastify.addHook('onError', (request, _reply, error, done) => {
    const rec = request.journey
    if (rec !== null && Number.isNaN(rec.errorAt)) {
      rec.errorAt = now()
      rec.error = error
    }
    done()
  })

  fastify.addHook('onSend', (request, reply, payload, done) => {
    const rec = request.journey
    // A second onSend is the error reply of an error after the first (another plugin's onSend hook threw, or
    // a streamed body failed before its first byte): the response had started, so write began at the first;
    // the error cuts it, and the error reply's own writing is in the error_handler gap (a stage happens once).
    if (rec !== null && Number.isNaN(rec.serializeEndAt)) {
      const t = now()
      // Strings, buffers, streams and errors skip preSerialization: the handler (or, after an error, the
      // error handler) ended here, and nothing was serialized since — Fastify serializes an error reply
      // inside its error handling, in the error_handler gap.
      if (Number.isNaN(rec.handlerEndAt)) {
        rec.handlerEndAt = t
        rec.serializeSkipped = true
      }
      rec.serializeEndAt = t
      if (serverTiming !== undefined && !rec.ignored && serverTiming(request)) addServerTiming(reply, serverTimingValue(rec, t))
      const res = reply.raw
      if (rec.conn.multiplexed) {
        // An HTTP/2 stream counts no bytes of its own (the socket's are every stream's), and its response's
        // socket is undefined once the stream has closed (a reset while the handler ran): nothing to read.
        rec.writeStartAt = t
      } else {
        const socket = res.socket
        if (socket !== null) {
          rec.writeStartAt = t
          rec.bytesWrittenStart = socket.bytesWritten
        } else {
          res.on('socket', onPipelinedSocket) // emitted once per response: no once() wrapper needed
        }
      }
      // Only a streamed body is written piece by piece and can wait for 'drain'; a string or buffer is
      // handed over in one end() call (its wait for the kernel still shows as a long write stage). A body
      // big enough to compress may still become a stream in a later onSend (a compressor's, which always
      // runs after this one): Fastify then pipes that stream into the response, which says so with 'pipe'.
      if (typeof (payload as { pipe?: unknown } | null)?.pipe === 'function') {
        rec.backpressure = false // streamed: settled at its end (settleBackpressure)
        // A body stream failing once its headers are out gets no onError hook: Fastify logs it and destroys
        // the connection. Taken here, it is the error that cut the write stage, as a hook's would be.
        ;(payload as Readable).once('error', (error: Error) => { onStreamError(rec, error) })
      } else if (isWebBody(payload)) {
        // Fastify reads a web stream itself; its errors reach only Fastify's reader, so a failure mid-body
        // shows as the server's cut alone.
        rec.backpressure = false
      } else if (((payload as { length?: number } | null)?.length ?? 0) >= MAY_BE_STREAMED) {
        res.on('pipe', onPipe) // emitted once per response, if at all
      }
    }
    done(null, payload)
  })

  // The handler mark and the request's trace context need the handler itself: wrap it once per route.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    // Route-level preParsing runs after the global hooks, and decompressors registered later put theirs
    // in front of it: so this one sees the decoded stream. Routes that only take bodyless methods (Fastify
    // never parses a GET, HEAD or TRACE body) do without it: one hook call less on every such request.
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const m of methods) knowMethod(m)
    if (methods.some(m => !BODYLESS.has(m))) {
      route.preParsing = appendHook(route.preParsing, countDecoded)
    }
    const config: Record<PropertyKey, unknown> = { ...route.config }
    config[kWrapped] = true
    if (opts.ignoreRoutes?.has(route.url) === true) {
      config[kIgnored] = true
      ignoredSeen.add(route.url)
    }
    route.config = config as typeof route.config
    const ws = route as unknown as { websocket?: boolean, wsHandler?: WsHandler }
    if (ws.websocket === true || typeof ws.wsHandler === 'function') {
      // @fastify/websocket registered after the journey takes this route's handler (ours, wrapped) or its
      // wsHandler, to call once the upgrade is done, as (socket, request); the upgrade request itself goes
      // to a handler of its own that no wrapper of ours sees. A route-level preHandler, the last hook before
      // that handler, marks its start; wrapUpgraded ends the request where the new protocol begins.
      route.preHandler = appendHook(route.preHandler, markHandlerStart)
      if (typeof ws.wsHandler === 'function') ws.wsHandler = wrapUpgraded(ws.wsHandler)
    }
    const handler = route.handler
    // With `websocket: true`, that handler is ours: called as (socket, request) once the upgrade is done.
    const asUpgraded = ws.websocket === true ? wrapUpgraded(handler as unknown as WsHandler) : undefined
    route.handler = function journeyHandler (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
      const rec = (request as { journey?: RequestRecord | null }).journey
      if (rec === undefined && asUpgraded !== undefined) return asUpgraded.call(this, request, reply as unknown as FastifyRequest)
      if (rec == null) return handler.call(this, request, reply)
      rec.handlerStartAt = now()
      // Fastify parsed the body before the handler, unless a parser left it to the handler (multipart).
      if (!request.raw.complete && !isUpgrade(request) && bodyFollows(request)) rec.bodyArriving = true
      const result = rec.context === undefined ? handler.call(this, request, reply) : context.with(rec.context, handler, this, request, reply)
      // Its synchronous part has run: whether the handler computed on the loop or waited (traced journeys: shown on spans).
      if (traced) rec.handlerReturnedAt = now()
      // A handler that upgraded the connection (the 101 written, the reply hijacked; @fastify/websocket
      // registered before the journey): the request left HTTP here. (ws writes its 101 synchronously,
      // unless an async verifyClient delays it: then the record ends before the 101 is written.)
      // A handshake refused (ws answers 400 itself and ends the socket) is no upgrade: it ends at the close.
      if (isUpgrade(request) && reply.sent && request.raw.socket?.writableEnded === false) finishUpgraded(rec, request.raw.socket)
      return result
    }
  })
}
