// Public API of the journey instrumentation: what another Fastify 5 app imports.
//
//   const tracing = journeyTracing({ spanProcessors })       // sampler, id generator, your processors
//   new NodeSDK({ ...tracing.sdkOptions }).start()
//   const journey = createJourney({ registry, tracing })
//   const app = Fastify()                                    // or with `https`, or `http2: true`
//   await app.register(journey.plugin)                       // before the routes; observes app.server
//   app.addHook('onClose', async () => journey.close())      // resolves once the connections closing have ended
import { createServer as createHttpServer, type RequestListener, type Server, type ServerOptions } from 'node:http'
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https'
import type { Server as NetServer, Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import { trace, type Tracer } from '@opentelemetry/api'
import type { Sampler, SpanProcessor } from '@opentelemetry/sdk-trace'
import type { FastifyPluginCallback } from 'fastify'
import fp from 'fastify-plugin'
import type { MetricsRegistry } from './metrics-registry.ts'
import { createMetricsConsumer } from './consume-metrics.ts'
import { checkBuckets } from './histogram.ts'
import { createSpanConsumer } from './consume-spans.ts'
import { checkKeepLimit } from './keep-limit.ts'
import { knownReasons, observeServer, type ObservableServer } from './observe-connection.ts'
import { observeAppServers } from './app-servers.ts'
import { observeFastify } from './observe-fastify.ts'
import { checkParserInternals } from './observe-parser.ts'
import { cipherTapListener } from './cipher-tap.ts'
import { createKernelMetrics } from './kernel.ts'
import { tcpInfoLoadError, tcpInfoShort, tcpInfoUnavailable } from './tcp-info.ts'
import { bundledInto } from './bundled.ts'
import { createRecentConsumer, type RecentConsumer } from './consume-recent.ts'
import { registerJourneyPage } from './page.ts'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { JourneySampler, PresetIdGenerator, samplerFromEnv } from './sampling.ts'
import { warnEncapsulated, warnUnmeasured } from './misuse-warnings.ts'
import { HTTP_DURATION_BUCKETS, METRIC, SIZE_BUCKETS, STAGE_BUCKETS, type Precision } from './stages.ts'
import { SCOPE_NAME, SCOPE_VERSION } from './version.ts'
import type { JourneyOwner, RequestRecord } from './records.ts'

// Here, in the entry point, so that an app importing the package (its declarations) sees it too.
declare module 'fastify' {
  interface FastifyRequest {
    /** The journey record of this request; null when its socket is not observed (inject(), other servers). */
    journey: RequestRecord | null
  }
}

export { STAGES, METRIC, EXPORT_METRIC, ATTR, stageSpanName, SPAN_CONNECTION, STAGE_BUCKETS, HTTP_DURATION_BUCKETS, SIZE_BUCKETS, type Precision, type Stage } from './stages.ts'
export { channels } from './publish.ts'
export { clientErrorReason, tlsFailureReason } from './observe-connection.ts'
export { sessionErrorReason } from './observe-http2.ts'
export { buildTimeline, summarize, type JourneySummary, type Timeline, type Interval } from './timeline.ts'
export { urlPath } from './url-path.ts'
export { exposition, prefersOpenMetrics, openMetricsToText, type Exposition } from './exposition.ts'
export { registryMetricProducer, type BridgeMetricProducer, type JsonMetricsSource } from './metric-producer.ts'
export { countedMetricExporter, type MetricPushExporter } from './metric-pushes.ts'
export type { RequestRecord, ConnectionRecord, DroppedConnection, JourneyOwner } from './records.ts'
export type { SpanAdmission } from './admission.ts'
export { countedBatchProcessor, type CountedBatchProcessorOptions } from './span-pipeline.ts'
export { checkParserInternals }

export interface JourneyTracing {
  /** The head sampler (from OTEL_TRACES_SAMPLER unless given), asked once per request at its start. */
  headSampler: Sampler
  idGenerator: PresetIdGenerator
  /** The processors given to journeyTracing(), if any: the journey hands its finished stage spans to them. */
  spanProcessors: SpanProcessor[] | undefined
  /** Request spans go to the processors as finished spans too (JourneyTracingOptions.finishedRequestSpans). */
  finishedRequestSpans: boolean
  /**
   * Spread into NodeSDK (or a TracerProvider's options): lets the journey keep the spans it decided to
   * keep, and registers the given processors with the SDK, which flushes and shuts them down.
   */
  sdkOptions: { sampler: JourneySampler, idGenerator: PresetIdGenerator, spanProcessors?: SpanProcessor[] }
}

export interface JourneyTracingOptions {
  /** Head sampling for requests; default: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG as the spec defines. */
  headSampler?: Sampler
  /**
   * Your span processors (a BatchSpanProcessor with your exporter, say). Given here rather than to the SDK
   * directly, the journey hands each finished stage span straight to them instead of building it through
   * the tracer — the same spans, for a fraction of the CPU (finished-span.ts). Without them it still works,
   * through the tracer.
   */
  spanProcessors?: SpanProcessor[]
  /**
   * With spanProcessors: hand request spans straight to them too, built finished rather than through the
   * tracer (≈ 7 % less CPU per request at 100 % sampling here: bench/NOTES.md). The exported spans are the
   * same, but your processors then see request spans at onEnd only, as they see stage spans, and the SDK's
   * span limits (OTEL_SPAN_ATTRIBUTE_*_LIMIT) are not applied to them. Leave it off if a processor acts in
   * onStart (a baggage span processor, say) or you set span limits. The first request span of the process
   * still goes through the tracer: it gives the resource and scope the others carry. Like the rest of the
   * journey's tracing it assumes `sdkOptions` reached the SDK: the journey's sampler keeps what the journey
   * decided, so a request span built here is one the SDK would have recorded too.
   */
  finishedRequestSpans?: boolean
}

export function journeyTracing (opts: JourneyTracingOptions = {}): JourneyTracing {
  const headSampler = opts.headSampler ?? samplerFromEnv()
  const idGenerator = new PresetIdGenerator()
  const sdkOptions: JourneyTracing['sdkOptions'] = { sampler: new JourneySampler(headSampler), idGenerator }
  if (opts.spanProcessors !== undefined) sdkOptions.spanProcessors = opts.spanProcessors
  return {
    headSampler, idGenerator, spanProcessors: opts.spanProcessors, sdkOptions,
    finishedRequestSpans: opts.finishedRequestSpans === true && opts.spanProcessors !== undefined
  }
}

export interface JourneyOptions {
  /** prom-client 15's Registry, or @prometheus-io/client's (its successor, which fastify-metrics 14 uses). */
  registry: MetricsRegistry
  /** From journeyTracing(), configured into the SDK; without it the journey emits metrics only. */
  tracing?: JourneyTracing | undefined
  tracer?: Tracer
  precision?: Precision
  /**
   * Requests at least this slow are traced even when the head sampler said no: their root span's duration
   * (from accept on a connection's first request) less the client's wait before its first byte.
   */
  slowThresholdMs?: number
  /** Failed (5xx, aborted) requests are traced even when the head sampler said no. */
  keepErrors?: boolean
  /**
   * At most this many requests a second are traced by each tail rule (slow, error) — default 100, Infinity
   * for no limit: in a storm every request qualifies, and tracing them all costs the server most of its
   * capacity when it can least spare it. The rest are counted in `journey_traces_rate_limited_total{rule}`.
   */
  keepLimitPerSecond?: number
  /**
   * On a traced request, the error Fastify took (a handler or hook that threw, a body it could not parse)
   * becomes an `exception` event — type, message and stack, as the SDK's recordException() writes them — on
   * the stage span it ended, or on the request span when no stage was running. Default true; false keeps
   * messages and stacks (which your code writes, and may put data in) out of traces.
   */
  recordExceptions?: boolean
  /** Request headers to record on request spans (any case). Nothing else from the request is recorded. */
  recordHeaders?: string[]
  /** Response headers to record on request spans (any case), as they went out: `content-encoding`, `cache-control`… */
  recordResponseHeaders?: string[]
  /** > 0: sample accept queues every this many ms off the event loop (journey_accept_queue_peak); for experiments. */
  kernelSampleMs?: number
  /**
   * Send each response's stages so far (accept to serialize, the hooks gap, and a head-sampled request's
   * trace id) in a `Server-Timing` header, for browsers' devtools and scripts. Default false: every client
   * then sees how long the server spent, in each stage. A function decides per request (called at onSend),
   * e.g. only for your own network or a debug header: `(request) => request.headers['x-debug'] === '1'`.
   */
  serverTiming?: boolean | ((request: FastifyRequest) => boolean)
  /**
   * Route templates, as declared with their prefix (`'/metrics'`, `'/healthz'`, `'/v1/ping'`), whose
   * requests no consumer gets: no histogram, span, journey-page row or Server-Timing header — a scrape or
   * a probe is then not among your requests. Their connections are still counted, and a request is in
   * `http_server_active_requests` until its end (its route is not known before Fastify routes it); when it
   * was its connection's first, that connection's accept and TLS stages and the client's wait before its
   * first byte go unobserved with it (the handshake is still in journey_tls_handshake_duration_seconds).
   */
  ignoreRoutes?: Iterable<string>
  /**
   * Bucket bounds, ascending (`+Inf` is always added), for the histograms that grow with your routes.
   * `stages` (seconds): journey_stage_duration_seconds and journey_gap_duration_seconds (and the TLS
   * handshake's), default STAGE_BUCKETS (24, 250 ns to 10 s); `requests` (seconds):
   * http_server_request_duration_seconds, default HTTP_DURATION_BUCKETS (23, 5 µs to 10 s); `sizes` (bytes):
   * http_server_request_body_size_bytes and journey_response_written_bytes, default SIZE_BUCKETS (11, 0 to
   * 16 MiB). Each bound is one series per route, method and stage, so fewer bounds carry fewer series
   * (docs/stages.md, "Series per route"); `[]` keeps only `_sum`, `_count` and `+Inf`: means, no percentiles.
   */
  buckets?: { stages?: readonly number[], requests?: readonly number[], sizes?: readonly number[] }
}

/** What a serverFactory reads of the options Fastify hands it along with the handler. */
export interface FactoryFastifyOptions { https?: HttpsServerOptions | true | null, http2?: boolean }

export interface Journey {
  /**
   * Attach the connection and parser observers to a server the app owns; returns it. The plugin does this
   * itself for the Fastify app's own server(s), as `http` or `https`: call it for other servers, or before
   * the app is ready to name its server otherwise. A server already observed is left as it is.
   */
  observeServer: <S extends ObservableServer>(server: S, listener: string) => S
  /**
   * A Fastify `serverFactory` building an observed http server, or https given `https` options here or in
   * Fastify's own options. Fastify does not apply its timeout options to servers from a factory: pass them
   * in `options`. An HTTP/2 app (`http2: true`) needs no factory: the plugin observes the server Fastify
   * builds (name it with observeServer); the factory throws rather than hand it an HTTP/1 server.
   */
  serverFactory: (options?: ServerOptions & { https?: HttpsServerOptions, listener?: string }) => (handler: RequestListener, fastifyOptions?: FactoryFastifyOptions) => Server
  /**
   * The server to call listen() on for an observed server: the server itself, except for TLS in fine mode,
   * where a TCP listener feeds it through a CipherTap so decryption can be timed.
   */
  listenerFor: (server: ObservableServer) => NetServer
  plugin: FastifyPluginCallback
  precision: Precision
  /** The recent-requests view behind the built-in page; it starts collecting on first use (or registerPage). */
  readonly recent: RecentConsumer
  /** Serve the built-in page (/journey) on an app, normally the admin listener's. */
  registerPage: (app: FastifyInstance, opts?: { jaegerUrl?: string | undefined }) => void
  /** Why read/parse are not measured on this Node, if they are not. */
  limitation: string | undefined
  /** Why kernel figures (TCP_INFO waits, accept queues, listen overflows) are absent on this system, if they are. */
  kernelLimitation: string | undefined
  /**
   * Stops the journey and takes its metrics out of the registry. Resolves once the connections the app's
   * server was destroying as it closed have ended, and what ended with them (requests cut off, the
   * connections' spans and counts) is recorded: await it (the set-up's onClose hook returns it) before
   * shutting the tracing SDK down. With nothing pending it has closed the journey when it returns.
   */
  close: () => Promise<void>
}

export function createJourney (opts: JourneyOptions): Journey {
  const precision = opts.precision ?? 'default'
  const buckets = {
    stages: opts.buckets?.stages === undefined ? STAGE_BUCKETS : checkBuckets('stages', opts.buckets.stages),
    requests: opts.buckets?.requests === undefined ? HTTP_DURATION_BUCKETS : checkBuckets('requests', opts.buckets.requests),
    sizes: opts.buckets?.sizes === undefined ? SIZE_BUCKETS : checkBuckets('sizes', opts.buckets.sizes)
  }
  // One live journey per registry. prom-client would refuse a second one's first metric halfway through
  // creating it, saying only that the name is taken; an app built once per test over the global registry
  // meets that at its second build. Said up front, with the way out (close() hands the names back).
  const taken = Object.values(METRIC).find(name => opts.registry.getSingleMetric(name) !== undefined)
  if (taken !== undefined) {
    throw new Error(`request-journey: the registry already has ${taken}: another journey registered its metrics there and was not closed (journey.close() removes them), or the app has a metric of that name. Close the other journey first, or give each live journey a registry of its own.`)
  }
  // This journey's connections carry it, so its consumers take only its records (records.ts).
  const owner: JourneyOwner = { start: () => {}, traced: opts.tracing !== undefined, sockets: new Set() }
  // Subscription order matters: spans first, so the metrics consumer sees the kept trace id for exemplars.
  const spans = opts.tracing === undefined
    ? undefined
    : createSpanConsumer({
      tracer: opts.tracer ?? trace.getTracer(SCOPE_NAME, SCOPE_VERSION),
      ids: opts.tracing.idGenerator,
      processors: opts.tracing.spanProcessors,
      finishedRequestSpans: opts.tracing.finishedRequestSpans,
      headSampler: opts.tracing.headSampler,
      sampler: opts.tracing.sdkOptions.sampler,
      precision,
      slowThresholdMs: opts.slowThresholdMs ?? 500,
      keepErrors: opts.keepErrors ?? true,
      keepLimitPerSecond: checkKeepLimit(opts.keepLimitPerSecond ?? 100),
      registry: opts.registry,
      recordExceptions: opts.recordExceptions ?? true,
      // Node's request headers are keyed in lower case, and the semantic conventions' attribute keys are too:
      // `User-Agent` would otherwise match nothing, or name an attribute no backend groups with the others.
      recordHeaders: (opts.recordHeaders ?? []).map(h => h.toLowerCase()),
      recordResponseHeaders: (opts.recordResponseHeaders ?? []).map(h => h.toLowerCase()),
      owner
    })
  if (spans !== undefined) owner.start = spans.start
  const metrics = createMetricsConsumer(opts.registry, owner, buckets)
  // The page's view is built only if a page is served: an app that never shows it pays nothing for it.
  let recent: RecentConsumer | undefined
  let closed: Promise<void> | undefined
  const recentView = (): RecentConsumer => (recent ??= createRecentConsumer({ owner }))
  const kernel = createKernelMetrics(opts.registry, { sampleMs: opts.kernelSampleMs ?? 0 })
  const registered = Object.values(METRIC).flatMap(name => {
    const metric = opts.registry.getSingleMetric(name)
    return metric === undefined ? [] : [{ name, metric }]
  })
  const ignoreRoutes = opts.ignoreRoutes === undefined ? undefined : new Set(opts.ignoreRoutes)
  const listenerNames = new WeakMap<ObservableServer, string>()
  const observe = (server: ObservableServer, listener: string, watchKernel: boolean): void => {
    if (!observeServer(server, listener, precision === 'fine', owner)) return
    if (watchKernel) kernel.watch(server, listener)
    metrics.listen(listener, knownReasons(server))
    listenerNames.set(server, listener)
  }
  const plugin = fp((fastify, _o, done) => {
    // Fastify's own error here ("The decorator 'journey' has already been added!") names no cause.
    if (fastify.hasRequestDecorator('journey')) return done(new Error(REGISTERED_TWICE))
    warnEncapsulated(fastify)
    warnUnmeasured({ parserSeen: checkParserInternals() === undefined, addonLoadError: tcpInfoLoadError, tcpInfoShort, bundledInto, samplerWanted: (opts.kernelSampleMs ?? 0) > 0 })
    observeFastify(fastify, { fine: precision === 'fine', traced: spans !== undefined, serverTiming: opts.serverTiming, ignoreRoutes })
    observeAppServers(fastify, observe, precision === 'fine')
    done()
  }, { fastify: '5.x', name: 'request-journey' })
  return {
    observeServer (server, listener) {
      observe(server, listener, true)
      return server
    },
    serverFactory (options = {}) {
      const { https: ownTls, listener, ...http } = options
      // Fastify hands its own options to the factory and trusts the server it gets back: a plain server
      // where Fastify was told `https` would serve plaintext on what the app believes is TLS.
      return (handler, fastifyOptions = {}) => {
        if (fastifyOptions.http2 === true) {
          throw new Error('journey.serverFactory() builds HTTP/1 servers; an http2 app needs none: the plugin observes the server Fastify builds (journey.observeServer(app.server, name) names it)')
        }
        const appTls = fastifyOptions.https === true ? {} : fastifyOptions.https ?? undefined
        const https = ownTls ?? appTls
        return https === undefined
          ? this.observeServer(createHttpServer(http, handler), listener ?? 'http')
          : this.observeServer(createHttpsServer({ ...http, ...https }, handler), listener ?? 'https')
      }
    },
    listenerFor (server) {
      if (!(precision === 'fine' && server instanceof TlsServer)) return server
      // The TCP listener in front of the TLS server owns the accept queue now.
      const tap = cipherTapListener(server)
      const listener = listenerNames.get(server)
      if (listener !== undefined) kernel.watch(tap, listener)
      return tap
    },
    plugin,
    precision,
    get recent () { return recentView() },
    registerPage (app, pageOpts = {}) {
      registerJourneyPage(app, { recent: recentView(), jaegerUrl: pageOpts.jaegerUrl })
    },
    limitation: checkParserInternals(),
    kernelLimitation: [kernel.unavailable, tcpInfoUnavailable].filter(x => x !== undefined).join('; ') || undefined,
    close () {
      if (closed !== undefined) return closed
      const teardown = (): void => {
        spans?.close()
        metrics.close()
        recent?.close()
        kernel.close()
        // A closed journey counts nothing more: its metrics would only repeat their last values, and hold
        // their names against the next journey on this registry.
        for (const { name, metric } of registered) {
          if (opts.registry.getSingleMetric(name) === metric) opts.registry.removeSingleMetric(name)
        }
      }
      const pending = closing(owner.sockets)
      if (pending !== undefined) return (closed = pending.then(teardown))
      teardown()
      return (closed = Promise.resolve())
    }
  }
}

/** Said when a request already has a `journey` here: a request belongs to one journey, measured once. */
const REGISTERED_TWICE = 'request-journey: requests on this Fastify instance already have a `journey` (journey.plugin registered twice, or two journeys\' plugins): register one journey\'s plugin once, on the root instance'

/** How long close() waits at most for sockets already destroyed to close. */
const CLOSING_WAIT_MS = 1000

/**
 * Resolves once each of these sockets that is already destroyed has emitted its 'close'; undefined when
 * none is. Fastify runs its onClose hooks, the journey's close among them, when the server's close()
 * returns, which it does as the last connection is destroyed: that connection's requests still running (a
 * client that left as the app closed), and the connection itself, end at its 'close', a loop turn later.
 * Not waited for: sockets still open, on a server the app did not close — their requests go unrecorded.
 */
function closing (sockets: Iterable<Socket>): Promise<void> | undefined {
  const closes: Array<Promise<unknown>> = []
  for (const socket of sockets) {
    if (socket.destroyed) closes.push(new Promise(resolve => socket.once('close', resolve)))
  }
  if (closes.length === 0) return undefined
  // Bounded all the same: Fastify bounds an onClose hook by its pluginTimeout (10 s) and fails the close
  // with an uncaught error past it. A destroyed socket closes within a loop turn or two.
  return new Promise(resolve => {
    const bound = setTimeout(resolve, CLOSING_WAIT_MS).unref()
    void Promise.all(closes).then(() => { clearTimeout(bound); resolve() })
  })
}
