// Spans, built after the fact from finished records with explicit start and end times.
// Head sampling is decided when the request starts (so the handler's own spans can join the trace);
// unsampled requests allocate no span at all unless a keep-slow or keep-errors rule keeps them at the end.
import {
  context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags,
  type Attributes, type Context, type Exception, type Link, type Span, type SpanContext, type SpanStatus, type Tracer, type TraceState
} from '@opentelemetry/api'
import { RandomIdGenerator, type Sampler, type SpanProcessor } from '@opentelemetry/sdk-trace'
import { isTracingSuppressed } from '@opentelemetry/core'
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions'
import { followWallClock, toEpochMs } from './clock.ts'
import { errorTypeOf, ownedBy, type ConnectionRecord, type JourneyOwner, type RequestRecord } from './records.ts'
import { ATTR, METRIC, SPAN_CONNECTION, STAGES, stageSpanName, UNMATCHED_ROUTE, type Precision } from './stages.ts'
import { mostStages, slownessMs, tableOf, timelineOf, type Interval } from './timeline.ts'
import {
  decided, handlerContext, isHandlerContext, rootDecider, UNSAMPLED_ROOT, untracedContext, type JourneySampler, type PresetIdGenerator
} from './sampling.ts'
import { subscribe } from './publish.ts'
import { FinishedSpan, originOf, UNSET, type SpanOrigin } from './finished-span.ts'
import { one, peerAttributes, requestAttributes, responseHeaderAttributes, stageAttributes, tlsAttributes } from './span-attributes.ts'
import { methodLabel, OTHER_METHOD } from './http-method.ts'
import { admissionOf } from './admission.ts'
import { readSendQueue } from './tcp-info.ts'
import { warnNoSdkOptions, warnNotRecorded } from './misuse-warnings.ts'
import { keepLimiter } from './keep-limit.ts'
import { FastCounter } from './counter.ts'
import { asPromClientRegistry, type MetricsRegistry } from './metrics-registry.ts'

/** Smallest response whose write span says what the kernel still held of it: Linux's initial send buffer (tcp_wmem). */
const UNACKED_FROM = 16 * 1024

/** The span context of a valid parent in `ctx`, if any: the request continues its trace and tracestate. */
function validSpanContext (ctx: Context | undefined): SpanContext | undefined {
  const s = ctx === undefined ? undefined : trace.getSpanContext(ctx)
  return s !== undefined && trace.isSpanContextValid(s) ? s : undefined
}

export interface SpanConsumerOptions {
  tracer: Tracer
  /**
   * The SDK's span processors, when the app handed them to journeyTracing(): stage spans then go straight
   * to them as finished ReadableSpans (finished-span.ts). Without them every span goes through `tracer`.
   */
  processors: SpanProcessor[] | undefined
  /**
   * Request spans go straight to `processors` too, once the SDK has built one (for its resource and scope):
   * the processors see them at onEnd only, and the SDK's span limits are not applied (journeyTracing()).
   */
  finishedRequestSpans?: boolean
  ids: PresetIdGenerator
  headSampler: Sampler
  /**
   * The provider's sampler, when it is the journey's: once it has seen a span of the app's own, unsampled
   * requests' handlers run in a context that keeps their spans unrecorded (sampling.ts).
   */
  sampler: JourneySampler | undefined
  precision: Precision
  slowThresholdMs: number
  keepErrors: boolean
  /** Requests each tail rule (slow, error) may keep a second (keep-limit.ts); Infinity: no limit. */
  keepLimitPerSecond: number
  /** Where the requests a tail rule could not keep, over that limit, are counted. */
  registry: MetricsRegistry
  /** The error Fastify took becomes an exception event on the span where it happened (JourneyOptions). */
  recordExceptions: boolean
  recordHeaders: string[]
  /** Response headers to record on request spans (http.response.header.<name>), read when a span is built. */
  recordResponseHeaders: string[]
  /** Only this journey's records (records.ts); every journey's without it. */
  owner?: JourneyOwner | undefined
}

export interface SpanConsumer {
  /** Head sampling at request start; prepares the context the handler runs in. */
  start: (rec: RequestRecord, headers: Record<string, string | string[] | undefined>) => void
  close: () => void
}

const random = new RandomIdGenerator()

// Random span ids for all of a request's stages in one hex string (16 characters each): one conversion per
// request instead of one per span. Same source and rule as the SDK's RandomIdGenerator (Math.random, never
// an all-zero id).
const ID_BUFFER = Buffer.alloc(8 * STAGES.length)
function spanIds (n: number): string {
  for (let i = 0; i < 2 * n; i++) ID_BUFFER.writeUInt32BE(Math.random() * 2 ** 32 >>> 0, 4 * i)
  for (let i = 0; i < n; i++) if (ID_BUFFER.readUInt32BE(8 * i) === 0 && ID_BUFFER.readUInt32BE(8 * i + 4) === 0) ID_BUFFER[8 * i + 7] = 1
  return ID_BUFFER.toString('hex', 0, 8 * n)
}
const CUT = 'this stage did not complete (an error, or the request was cut off)'
const CUT_STATUS: SpanStatus = Object.freeze({ code: SpanStatusCode.ERROR, message: CUT })
const ABORTED = 'connection closed before the response finished'
// An HTTP/2 stream reset (by either side: Node does not say which) on a connection that lives on.
const STREAM_RESET = 'stream reset before the response finished'

/** The request span's status message for a request cut off. */
function abortedMessage (rec: RequestRecord): string {
  return rec.conn.multiplexed && rec.abortedBy === undefined ? STREAM_RESET : ABORTED
}
// Contexts are immutable: the common parent (none, already decided) is built once, not per traced request.
const DECIDED_ROOT = decided(ROOT_CONTEXT)

export function createSpanConsumer (opts: SpanConsumerOptions): SpanConsumer {
  const { tracer, ids, headSampler, precision, recordHeaders, recordResponseHeaders, processors } = opts

  const decideRoot = rootDecider(headSampler)
  const admission = admissionOf(processors)
  const { sampler } = opts
  const appSpans = (): boolean => sampler?.appSpans === true
  // One limit per tail rule, so a storm of one kind (every request failing) leaves room for the other.
  const limitedBy = new FastCounter({
    name: METRIC.tracesRateLimited,
    help: 'Requests a tail rule (slow, error) would have traced although the head sampler had not, not traced because that rule had kept its limit for the second (keepLimitPerSecond; the demo\'s JOURNEY_KEEP_PER_SECOND). Their metrics count as every request\'s.',
    labelNames: ['rule'],
    registers: [asPromClientRegistry(opts.registry)]
  })
  const tail = {
    error: { allowed: keepLimiter(opts.keepLimitPerSecond), limited: limitedBy.series('error') },
    slow: { allowed: keepLimiter(opts.keepLimitPerSecond), limited: limitedBy.series('slow') }
  }
  // Resource and scope of the journey's tracer, from the first span the SDK built for it: the spans built
  // here carry the same (exporters group by them).
  let origin: SpanOrigin | undefined
  let notRecordedSaid = false
  let foreignIdsSaid = false
  // The header names the global propagator reads (traceparent and tracestate for W3C, b3 or x-b3-* for
  // OTEL_PROPAGATORS=b3, …), looked up once the SDK has registered it.
  let fields: string[] | undefined
  function carriesContext (headers: Record<string, string | string[] | undefined>): boolean {
    fields ??= propagation.fields().map(f => f.toLowerCase())
    for (const f of fields) if (headers[f] !== undefined) return true
    return false
  }

  function start (rec: RequestRecord, headers: Record<string, string | string[] | undefined>): void {
    // Only allowlisted headers, copied now (the request object is gone when spans are built).
    for (const h of recordHeaders) {
      const v = headers[h]
      if (v !== undefined) (rec.headers ??= {})[`http.request.header.${h}`] = Array.isArray(v) ? v : [v]
    }
    const parent = parentOf(headers)
    // Most requests have no parent: no extraction, and no trace id unless this one is sampled.
    if (parent === undefined && decideRoot !== undefined) {
      const traceId = decideRoot()
      if (traceId !== undefined) sample(rec, ROOT_CONTEXT, traceId, undefined)
      else if (appSpans()) rec.context = UNSAMPLED_ROOT
      return
    }
    const ctx = parent ?? ROOT_CONTEXT
    const parentSpan = validSpanContext(ctx)
    const traceId = parentSpan?.traceId ?? random.generateTraceId()
    const result = headSampler.shouldSample(ctx, traceId, rec.method, SpanKind.SERVER, {}, [])
    rec.parentContext = parent
    if (result.decision === 2 /* RECORD_AND_SAMPLED */) sample(rec, ctx, traceId, parentSpan?.traceState)
    // Not sampled: the handler's spans follow the decision — under an incoming parent the sampler sees that
    // parent (and downstream calls propagate it); without one, the journey's sampler does not record them.
    else if (appSpans()) rec.context = handlerContext(ctx)
  }

  /**
   * The request span's parent, if any. Another instrumentation's server span may be active while Fastify
   * routes (instrumentation-http's, say): the request span then becomes its child, in its trace and under
   * its sampling decision, rather than a second trace of the same request — looked for only once the app
   * has started spans of its own, and never the journey's own handler context (one still active when Node
   * emits the next request must not make that request its child). Otherwise an incoming trace context.
   */
  function parentOf (headers: Record<string, string | string[] | undefined>): Context | undefined {
    if (appSpans()) {
      const active = context.active()
      if (!isHandlerContext(active) && trace.getSpanContext(active) !== undefined) return active
    }
    return carriesContext(headers) ? propagation.extract(ROOT_CONTEXT, headers) : undefined
  }

  function sample (rec: RequestRecord, parent: Context, traceId: string, traceState: TraceState | undefined): void {
    // Room for the request span and every stage this request can still have: exactly what it makes if
    // it completes (a keep-alive request 7, the first on a TLS connection 9).
    const room = 1 + mostStages(rec)
    if (!admission.reserve(room)) {
      // The export queue is full: this request runs untraced (no trace id in its logs, its handler's spans
      // not recorded, a parent's trace id passed on as not sampled), and is admitted or counted as dropped
      // at its end.
      rec.queueFull = true
      if (appSpans()) rec.context = untracedContext(parent)
      return
    }
    rec.reserved = room
    rec.sampled = true
    rec.traceId = traceId
    rec.spanId = random.generateSpanId()
    // The parent's tracestate goes on with the trace, as the request span's own does (finishedRequestSpan): the
    // handler's downstream calls pass it on, vendors' entries and OpenTelemetry's `ot` (consistent sampling) alike.
    rec.context = trace.setSpanContext(handlerContext(parent), { traceId, spanId: rec.spanId, traceFlags: 1, isRemote: false, traceState })
  }

  function keepRule (rec: RequestRecord, durationMs: number, end: number): RequestRecord['keptBy'] {
    if (rec.sampled || rec.queueFull) return 'head'
    const rule = opts.keepErrors && (rec.aborted || rec.status >= 500) ? 'error' : durationMs >= opts.slowThresholdMs ? 'slow' : undefined
    if (rule === undefined || tail[rule].allowed(end)) return rule
    tail[rule].limited.inc()
    return undefined
  }

  function onRequest (message: unknown): void {
    const rec = message as RequestRecord
    if (!ownedBy(rec.conn, opts.owner)) return
    // The keep rules need only the request's duration: walked as numbers, so the requests nobody keeps
    // (99 in 100 at 1 %) build no timeline objects.
    const table = tableOf(rec)
    const rule = keepRule(rec, slownessMs(table), table.end)
    if (rule === undefined) return
    const tl = timelineOf(rec)
    followWallClock(tl.end)
    // When the export queue is full (collector down or too slow) the whole trace is dropped before it is
    // built: no partial waterfall, no exemplar pointing at a trace that never arrives, and no CPU spent on
    // spans that would be thrown away. The request span and one span per stage. A head-sampled request's
    // room was held from its start: given back now, for the spans built next.
    const spans = tl.stages.length + 1
    if (rec.sampled) {
      admission.release(rec.reserved)
      rec.reserved = 0
    }
    if (!admission.admit(spans, rec.sampled)) return
    rec.keptBy = rule
    const conn = rec.conn
    // Write ends when the last byte is handed to the kernel; what the client had not acknowledged by then is
    // the kernel's to say, and only while the socket is open: asked here, as the response finishes, for the
    // kept requests whose responses outgrow Linux's initial send buffer (a smaller one's answer is at most
    // itself: "in flight"; not asking saves a syscall on most requests). An HTTP/2 connection's bytes are
    // every stream's (and bytesWritten is NaN there): not asked.
    if (rec.bytesWritten >= UNACKED_FROM && !rec.aborted && rec.response?.socket?.destroyed === false) rec.writeUnackedBytes = readSendQueue(conn.fd)
    conn.kept = true
    conn.traceId ??= random.generateTraceId()
    conn.spanId ??= random.generateSpanId()

    const route = rec.route === UNMATCHED_ROUTE ? undefined : rec.route
    const attributes = requestAttributes(rec, tl, rule, precision)
    if (recordResponseHeaders.length > 0) responseHeaderAttributes(rec, recordResponseHeaders, attributes)
    // In the shape the SDK gives a link once it has checked its attributes (a finished request span keeps it as is).
    const links: Link[] = [{
      context: { traceId: conn.traceId, spanId: conn.spanId, traceFlags: 1 },
      attributes: one(ATTR.connectionId, conn.id),
      droppedAttributesCount: 0
    }]

    // The semantic conventions' span name: `HTTP` for a method they would call `_OTHER` (http-method.ts).
    const method = methodLabel(rec.method)
    const verb = method === OTHER_METHOD ? 'HTTP' : method
    const name = route === undefined ? verb : `${verb} ${route}`
    const errorType = errorTypeOf(rec)
    // The error Fastify took, recorded where it happened: on the stage it ended, else (a hook of the app's
    // threw between stages) on the request span. Such requests are rare, so that span and their request span
    // go through the tracer: recordException() and the SDK's span limits apply to them as to any span.
    const exception = opts.recordExceptions && rec.error !== undefined && rec.errorAt < tl.end ? rec.error as Exception : undefined
    const errored = exception === undefined ? -1 : tl.stages.findIndex(iv => iv.cut && iv.end === rec.errorAt)
    let root: Span | undefined
    let finished: FinishedSpan | undefined
    // (A parent context that suppresses tracing gets the SDK's answer: a span that records nothing.)
    if (opts.finishedRequestSpans === true && processors !== undefined && origin !== undefined && exception === undefined &&
      (rec.parentContext === undefined || !isTracingSuppressed(rec.parentContext))) {
      finished = finishedRequestSpan(rec, name, toEpochMs(tl.start), toEpochMs(tl.end), attributes, links, errorType, origin)
    } else {
      // Head-sampled requests already own ids (the handler's spans point at them); kept ones get fresh ones.
      ids.preset(rec.traceId, rec.spanId)
      root = tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: toEpochMs(tl.start), attributes, links },
        rec.parentContext === undefined ? DECIDED_ROOT : decided(rec.parentContext))
      ids.preset(undefined, undefined)
      // A kept request's span that records nothing: no provider behind the tracer, or one whose sampler is
      // not the journey's. Nothing of the trace is exported then, which would otherwise go unsaid.
      if (!root.isRecording() && !notRecordedSaid && (rec.parentContext === undefined || !isTracingSuppressed(rec.parentContext))) {
        notRecordedSaid = true
        warnNotRecorded()
      }
      // One that records but took ids of its own: a provider started without tracing.sdkOptions (the
      // auto-instrumentations' register, say) whose sampler records everything. The ids this request's
      // logs and Server-Timing already carry are then not its trace's.
      if (rec.spanId !== undefined && root.isRecording() && root.spanContext().spanId !== rec.spanId && !foreignIdsSaid) {
        foreignIdsSaid = true
        warnNoSdkOptions()
      }
      if (errorType !== undefined) {
        root.setAttribute(ATTR_ERROR_TYPE, errorType)
        root.setStatus({ code: SpanStatusCode.ERROR, message: rec.aborted ? abortedMessage(rec) : undefined })
      }
      if (exception !== undefined && errored === -1) root.recordException(exception, toEpochMs(rec.errorAt))
      if (processors !== undefined && opts.finishedRequestSpans === true) origin ??= originOf(root)
    }
    const parent = (finished ?? root!).spanContext()
    // Consumers subscribed later (metrics exemplars, views) find the kept trace here — none when its span
    // records nothing, so nothing of it is exported: a no-op tracer's ids are all zeros, and an exemplar or a
    // link to them would name a trace no backend has.
    const recorded = finished !== undefined || root!.isRecording()
    rec.traceId = recorded ? parent.traceId : undefined
    rec.spanId = recorded ? parent.spanId : undefined

    // Stage spans go straight to the processors when this request span is an SDK span (a no-op tracer's
    // gets none) or was itself built here.
    const stageOrigin = root === undefined ? origin : originOf(root)
    if (processors !== undefined && stageOrigin !== undefined) {
      const ids = spanIds(tl.stages.length)
      for (let i = 0; i < tl.stages.length; i++) {
        const iv = tl.stages[i]!
        if (i === errored) {
          stageSpan(iv, rec, decided(trace.setSpan(ROOT_CONTEXT, root!)), exception)
          continue
        }
        const context: SpanContext = { traceId: parent.traceId, spanId: ids.slice(16 * i, 16 * i + 16), traceFlags: parent.traceFlags, traceState: parent.traceState }
        const span = new FinishedSpan(stageOrigin, context, parent, stageSpanName(iv.stage), SpanKind.INTERNAL,
          toEpochMs(iv.start), toEpochMs(iv.end), stageAttributes(iv, rec, precision), undefined, iv.cut ? CUT_STATUS : UNSET)
        for (const p of processors) p.onEnd(span)
      }
    } else {
      const ctx = decided(trace.setSpan(ROOT_CONTEXT, root!))
      for (let i = 0; i < tl.stages.length; i++) stageSpan(tl.stages[i]!, rec, ctx, i === errored ? exception : undefined)
    }
    if (finished !== undefined) for (const p of processors!) p.onEnd(finished)
    else root!.end(toEpochMs(tl.end))
  }

  /**
   * The request span exactly as tracer.startSpan() and end() make it under the journey's sampler (a
   * decided context is recorded and sampled; the trace and its state continue a valid parent's), without
   * them. spans-direct.test.ts holds the two paths equal.
   */
  function finishedRequestSpan (rec: RequestRecord, name: string, start: number, end: number, attributes: Attributes,
    links: Link[], errorType: string | undefined, origin: SpanOrigin): FinishedSpan {
    const parent = validSpanContext(rec.parentContext)
    const context: SpanContext = {
      traceId: parent?.traceId ?? rec.traceId ?? random.generateTraceId(),
      spanId: rec.spanId ?? random.generateSpanId(),
      traceFlags: TraceFlags.SAMPLED,
      traceState: parent?.traceState
    }
    let status = UNSET
    if (errorType !== undefined) {
      attributes[ATTR_ERROR_TYPE] = errorType
      status = rec.aborted ? { code: SpanStatusCode.ERROR, message: abortedMessage(rec) } : { code: SpanStatusCode.ERROR }
    }
    return new FinishedSpan(origin, context, parent, name, SpanKind.SERVER, start, end, attributes, links, status)
  }

  /** A stage span through the tracer; with `exception`, the stage that error ended. */
  function stageSpan (iv: Interval, rec: RequestRecord, parent: Context, exception?: Exception): void {
    const span = tracer.startSpan(stageSpanName(iv.stage), {
      kind: SpanKind.INTERNAL, startTime: toEpochMs(iv.start), attributes: stageAttributes(iv, rec, precision)
    }, parent)
    if (exception !== undefined) {
      // As the SDK names an exception's type (its code, else its name): low cardinality, unlike its message.
      const e = exception as { code?: unknown, name?: unknown, message?: unknown }
      const type = e.code != null ? String(e.code) : typeof e.name === 'string' ? e.name : undefined
      if (type !== undefined) span.setAttribute(ATTR_ERROR_TYPE, type)
      span.recordException(exception, toEpochMs(rec.errorAt))
      span.setStatus({ code: SpanStatusCode.ERROR, message: typeof e.message === 'string' ? e.message : CUT })
    } else if (iv.cut) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: CUT })
    }
    span.end(toEpochMs(iv.end))
  }

  // Filled by assignment, as span-attributes.ts explains.
  function connectionAttributes (conn: ConnectionRecord): Attributes {
    const a: Attributes = {}
    a[ATTR.listener] = conn.listener
    a[ATTR.connectionId] = conn.id
    a[ATTR.connectionRequests] = conn.requests
    a[ATTR.connectionBytesRead] = conn.bytesRead
    a[ATTR.connectionBytesWritten] = conn.bytesWritten
    if (conn.closedBy !== undefined) a[ATTR.connectionClosedBy] = conn.closedBy
    peerAttributes(conn, a)
    a[ATTR.precision] = precision
    a[ATTR.samplingRule] = conn.kept ? 'linked' : 'error'
    return conn.secure ? Object.assign(a, tlsAttributes(conn)) : a
  }

  // The connection's own span (accept → close), in its own trace: exported when a kept request links to
  // it, or when the connection failed (TLS handshake failure, HTTP client error) so failures are never lost.
  function onConnectionClose (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, opts.owner)) return
    const failed = conn.tlsFailure !== undefined || conn.errors.length > 0
    if (!conn.kept && !failed) return
    followWallClock(conn.closeAt)
    ids.preset(conn.traceId, conn.spanId)
    // INTERNAL: a connection is no request. Span-derived RED metrics (the Collector's spanmetrics, Tempo's
    // metrics generator) count SERVER spans as calls, and would count each connection as one lasting its life.
    const span: Span = tracer.startSpan(SPAN_CONNECTION, {
      kind: SpanKind.INTERNAL,
      startTime: toEpochMs(conn.acceptAt),
      attributes: connectionAttributes(conn)
    }, DECIDED_ROOT)
    ids.preset(undefined, undefined)
    if (conn.tlsFailure !== undefined) {
      // The handshake is this connection's only stage: show it, failed, inside the connection span.
      const end = Number.isNaN(conn.closeAt) ? conn.acceptAt : conn.closeAt
      const tls = tracer.startSpan(stageSpanName('tls'), {
        startTime: toEpochMs(Number.isNaN(conn.acceptedAt) ? conn.acceptAt : conn.acceptedAt),
        attributes: one(ATTR.tlsFailure, conn.tlsFailure)
      }, decided(trace.setSpan(ROOT_CONTEXT, span)))
      tls.setStatus({ code: SpanStatusCode.ERROR, message: `TLS handshake failed: ${conn.tlsFailure}` })
      tls.end(toEpochMs(end))
    }
    for (const reason of conn.errors) span.addEvent('connection error', one(ATTR_ERROR_TYPE, reason))
    if (failed) {
      span.setAttribute(ATTR_ERROR_TYPE, conn.tlsFailure ?? conn.errors[0] ?? 'error')
      span.setStatus({ code: SpanStatusCode.ERROR })
    }
    span.end(toEpochMs(conn.closeAt))
  }

  const unsubscribe = subscribe({ request: onRequest, connectionClose: onConnectionClose })
  return {
    start,
    close () {
      unsubscribe()
      // Requests still running will not be seen ending: their room goes back now.
      admission.releaseAll()
    }
  }
}
