// OpenTelemetry SDK and prom-client registry: set-up and shutdown, configured by the standard OTEL_* variables.
// Telemetry must never hurt serving: the exporter queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE) and export
// failures are logged at most once a minute, so `npm start` with no collector running stays quiet.
//
// The SDK and the exporters are imported only when tracing is on: a metrics-only process
// (OTEL_TRACES_EXPORTER=none) never loads them. Measured here on the bench's server: 162 MB of RSS at
// start instead of 177 (NodeSDK alone imports every exporter it could build, metrics and logs SDKs too).
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { hostname } from 'node:os'
import { setGlobalErrorHandler } from '@opentelemetry/core'
import { BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace'
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import type { Logger } from 'pino'
import { countedBatchProcessor, journeyTracing, type JourneyTracing } from './journey/index.ts'
import { rootRatioOf, samplerFromEnv } from './journey/sampling.ts'
import { exportTiming, startMetricsExport } from './metrics-export.ts'
import { metricExporterNames, metricsTemporality, otelEnvProblems, otlpDestination, otlpProtocol, positiveIntFromEnv, routeDiagnostics, sdkDisabled, traceExporterNames } from './otel-env.ts'
import { resourceAttributeFromEnv } from './resource-env.ts'
import type { ExportThreadChoice } from './config.ts'

export type OpenMetricsRegistry = Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>

type ResourceDetector = import('@opentelemetry/resources').ResourceDetector
// Where the host detector reads host.id on Linux (its machine-id reader, in this order).
const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id']

/**
 * The host detector, minus a host.id it cannot find. Container images usually have no machine id (the
 * semantic conventions ask for host.id outside containers only), yet the detector still offers the key and
 * resolves it to undefined, and the SDK then warns "dropping invalid resource attribute value" at every
 * start of every container. Checked once, at start-up, on the same files it reads.
 */
export function withoutMissingHostId (detector: ResourceDetector, exists: (path: string) => boolean = existsSync): ResourceDetector {
  return {
    detect (config) {
      const detected = detector.detect(config)
      if (process.platform !== 'linux' || MACHINE_ID_FILES.some(exists)) return detected
      const attributes = { ...detected.attributes }
      delete attributes['host.id']
      return { ...detected, attributes }
    }
  }
}

/**
 * The resource pushed metrics carry: the one NodeSDK builds for spans below (the SDK's defaults, this
 * process's instance id, the same detectors, then the service name), so a span and a pushed metric name
 * the same process. Built only when metrics are pushed.
 */
async function metricsResource (serviceName: string, instanceId: string): Promise<import('@opentelemetry/resources').Resource> {
  const { defaultResource, detectResources, envDetector, hostDetector, osDetector, processDetector, resourceFromAttributes } = await import('@opentelemetry/resources')
  return defaultResource()
    .merge(resourceFromAttributes({ 'service.instance.id': instanceId }))
    .merge(detectResources({ detectors: [withoutMissingHostId(hostDetector), osDetector, processDetector, envDetector] }))
    .merge(resourceFromAttributes({ 'service.name': serviceName }))
}

/** Whether `work` finished before `timeoutMs` passed (it is not waited for after). */
async function withDeadline (work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const done = await Promise.race([work.then(() => true), new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), timeoutMs) })])
  clearTimeout(timer)
  return done
}

export interface Telemetry {
  registry: OpenMetricsRegistry
  /** Undefined when tracing is off (OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none). */
  tracing: JourneyTracing | undefined
  /**
   * Where spans and pushed metrics go, worked out as the exporters do, and the head sampling, in words: for
   * the server's start-up line (`"msg":"telemetry"`), written once it listens (a start that fails says only
   * why).
   */
  destinations: { spans: string, headSampling?: string, metricsPush: string }
  /**
   * Starts the last push of the registry when metrics are pushed (OTEL_METRICS_EXPORTER=otlp), once, and
   * resolves when the registry has been read for it (or after timeoutMs). Call it while the journey's
   * metrics are still in the registry; shutdown() waits for its delivery.
   */
  lastMetricsPush: (timeoutMs: number) => Promise<void>
  /** Flushes pending spans and the last metrics push (started here if not yet), together; resolves within timeoutMs even when an exporter hangs. */
  shutdown: (timeoutMs: number) => Promise<void>
}

export interface TelemetryOptions {
  env?: Record<string, string | undefined>
  /** Replaces the exporters chosen by OTEL_TRACES_EXPORTER (tests pass an in-memory one). */
  spanProcessors?: SpanProcessor[]
  /** JOURNEY_EXPORT_THREAD, validated by config.ts; default auto. */
  exportThread?: ExportThreadChoice
  /** JOURNEY_EXPORT_CONCURRENCY, validated by config.ts; default SPAN_QUEUE_DEFAULTS.maxConcurrentExports. */
  exportConcurrency?: number
}

/**
 * The span pipeline's defaults. The queue holds 4× the SDK's 2048 spans because the journey makes ≈ 7 spans
 * per request where a typical instrumentation makes 1–3; a hung collector then holds ≈ 6 MB of heap (8192
 * stage spans, measured after GC). Batches stay at the SDK's 512: a batch is serialized in one go on the
 * event loop (≈ 2 µs a span), and 2048-span batches put ≈ 1.5 ms on a loaded server's p99. Throughput comes
 * from up to 8 batches in flight instead (journey/span-pipeline.ts says why the processor alone cannot keep up).
 * Measured on the bench's server, 100 % sampled, saturated by wrk (spans delivered per request, of 7):
 * one batch in flight 5.3 at 50 connections and 1.4 at 200; 4 in flight 7.0 and 7.0; 8 in flight 7.0,
 * 7.0 and 5.1 at 800 connections, where the queue itself is the limit (OTEL_BSP_MAX_QUEUE_SIZE).
 */
export const SPAN_QUEUE_DEFAULTS = { maxQueueSize: 8192, maxExportBatchSize: 512, maxConcurrentExports: 8 } as const

export type ExportThread = 'worker' | 'main'

/**
 * Where OTLP/HTTP requests are sent from: JOURNEY_EXPORT_THREAD=worker|main, or for auto, by the head
 * sampling ratio. A worker thread spares the serving thread the cost of having an HTTP client at all
 * (≈ 5 % of every request here, however rarely it sends), but each export then crosses threads into a
 * second V8 heap. Measured here (bench/NOTES.md): 3–8 % less CPU per request at 1 % sampling (and
 * ≈ 10–25 MB more RSS), 1–9 % less at 10 %, 3–15 % more and ≈ 100 MB more RSS at 100 %. So auto is the
 * worker up to 10 %, the serving thread above, and the serving thread for a sampler whose ratio is unknown.
 */
export function exportThread (choice: ExportThreadChoice, headRatio: number | undefined): ExportThread {
  if (choice !== 'auto') return choice
  return headRatio !== undefined && headRatio <= 0.1 ? 'worker' : 'main'
}

/**
 * The span exporters OTEL_TRACES_EXPORTER asks for, each with a line saying where it sends (for the start-up
 * line: told by the code that chooses, so it cannot drift from the choice).
 */
async function exportersFromEnv (env: Record<string, string | undefined>, thread: ExportThread): Promise<Array<{ exporter: SpanExporter, goesTo: string }>> {
  const names = traceExporterNames(env)
  if (names.includes('none')) return []
  const exporters: Array<{ exporter: SpanExporter, goesTo: string }> = []
  if (names.includes('otlp')) {
    // Each exporter reads its endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables.
    const { protocol } = otlpProtocol(env) // an unknown value is said at start-up (otel-env.ts)
    const to = `OTLP to ${otlpDestination(env, 'TRACES')}`
    // gRPC stays the SDK's own exporter, on this thread.
    if (protocol === 'grpc') exporters.push({ exporter: new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter(), goesTo: to })
    else if (thread === 'worker') {
      // The worker starts as the exporter is made, so a start that failed is known here, for the start-up line.
      // Only the first reason is kept: the callback hears again at every retry, for the process's life.
      const start: { failure?: string } = {}
      const exporter = (await import('./otlp-worker-exporter.ts')).createWorkerTraceExporter(protocol, (why) => { start.failure ??= why })
      exporters.push({ exporter, goesTo: start.failure === undefined ? `${to}, sent from the export worker thread` : `${to}, but ${start.failure}: exports fail until it starts` })
    }
    else if (protocol === 'http/json') exporters.push({ exporter: new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter(), goesTo: `${to}, sent from the serving thread` })
    else exporters.push({ exporter: (await import('./otlp-trace-serializer.ts')).createProtobufTraceExporter(), goesTo: `${to}, sent from the serving thread` })
  }
  if (names.includes('console')) exporters.push({ exporter: new ConsoleSpanExporter(), goesTo: 'console' })
  return exporters
}

/** The head sampler in words: the share of new traces it keeps, and whether a caller's decision is followed. */
function samplingOf (sampler: import('@opentelemetry/sdk-trace').Sampler): string {
  const ratio = rootRatioOf(sampler)
  const share = ratio === undefined ? sampler.toString() : `${Number((ratio * 100).toFixed(4))} % of new traces`
  return `${share}${sampler.toString().startsWith('ParentBased') ? ', a caller\'s decision followed' : ''}`
}

/** The start-up line's account of pushed metrics (scraping is in the 'listening' line). */
function metricsGoTo (env: Record<string, string | undefined>, disabled: boolean): string {
  const names = disabled || metricExporterNames(env).includes('none') ? [] : metricExporterNames(env)
  const out = [
    ...(names.includes('otlp') ? [`OTLP to ${otlpDestination(env, 'METRICS')} every ${exportTiming(env).exportIntervalMillis / 1000} s, ${metricsTemporality(env).temporality}`] : []),
    ...(names.includes('console') ? ['console'] : [])
  ]
  return out.length === 0 ? 'off' : out.join('; ')
}

export async function startTelemetry (serviceName: string, log: Logger, opts: TelemetryOptions = {}): Promise<Telemetry> {
  const env = opts.env ?? process.env
  // Before any exporter is built: they report a bad endpoint through diag, once, when constructed.
  routeDiagnostics(log, env)
  for (const problem of otelEnvProblems(env)) log.warn(problem)
  const registry: OpenMetricsRegistry = new Registry()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  collectDefaultMetrics({ register: registry })
  // One id for this process, on its spans (service.instance.id) and on its metrics (target_info, the
  // OpenTelemetry convention for resource attributes in Prometheus), so a trace and a scrape target can be
  // joined when several replicas run. Prometheus's own `instance` label is the scrape address.
  const instanceId = resourceAttributeFromEnv(env, 'service.instance.id') ?? randomUUID()
  new Gauge({
    name: 'target_info',
    help: 'Resource attributes of this process, as its spans carry them.',
    labelNames: ['service_name', 'service_instance_id', 'host_name'] as const,
    registers: [registry]
  }).set({ service_name: serviceName, service_instance_id: instanceId, host_name: hostname() }, 1)

  let lastWarn = -Infinity
  let suppressed = 0
  setGlobalErrorHandler((err) => {
    const t = performance.now()
    if (t - lastWarn < 60_000) { suppressed++; return }
    lastWarn = t
    log.warn({ err: String((err as Error)?.message ?? err), suppressed }, 'telemetry export failed; repeats are suppressed for 60 s')
    suppressed = 0
  })

  const { disabled } = sdkDisabled(env)
  const metrics = disabled ? undefined : await startMetricsExport(env, registry, () => metricsResource(serviceName, instanceId))
  // The last push, once, whoever asks first: the server asks after its listeners drained and before the
  // journey takes its metrics out of the registry (server.ts); it waits only until the registry has been
  // read, and shutdown waits for the push itself, alongside the span flush, within one deadline.
  let metricsShutdown: Promise<void> | undefined
  let metricsDone = metrics === undefined
  const shutdownMetrics = async (): Promise<void> => await (metricsShutdown ??= metrics === undefined
    ? Promise.resolve()
    : metrics.provider.shutdown()
      .catch((err: unknown) => { log.warn({ err: String((err as Error)?.message ?? err) }, 'metrics push at shutdown failed') })
      .finally(() => { metricsDone = true }))
  let metricsLate = false
  const lastMetricsPush = async (timeoutMs: number): Promise<void> => {
    if (metrics === undefined || metricsLate) return
    const read = metrics.collected() // marked before the push below starts collecting
    if (await withDeadline(Promise.race([read, shutdownMetrics()]), timeoutMs)) return
    metricsLate = true // said once, and not waited for again
    log.warn({ timeoutMs }, 'telemetry flush at shutdown did not finish in time; the last metrics push was not delivered')
  }
  /**
   * Waits for the span flush (when tracing) and the last metrics push together, at most timeoutMs, and says
   * once what did not make it. Spans lost here are the last chance to say so: nobody scrapes the counters of
   * a process that exits.
   */
  const finish = async (timeoutMs: number, flushSpans?: () => Promise<void>): Promise<void> => {
    let deadlinePassed = false
    let spansDone = flushSpans === undefined
    const spans = flushSpans?.().then(() => { spansDone = true }, (err: unknown) => {
      spansDone = true
      if (deadlinePassed) return // the deadline's line already counted them as not delivered
      log.warn({ err: String((err as Error)?.message ?? err) }, 'telemetry flush at shutdown failed; spans still queued were not delivered')
    })
    if (await withDeadline(Promise.all([spans, metricsLate ? undefined : shutdownMetrics()]), timeoutMs)) return
    deadlinePassed = true
    // Spans that failed were said above; a metrics push already said to be late is not said again.
    const lost = [...(spansDone ? [] : ['spans still queued']), ...(metricsDone || metricsLate ? [] : ['the last metrics push'])]
    if (lost.length > 0) log.warn({ timeoutMs }, `telemetry flush at shutdown did not finish in time; ${lost.join(' and ')} ${lost.length === 1 && spansDone ? 'was' : 'were'} not delivered`)
  }
  const headSampler = samplerFromEnv(env)
  const thread = exportThread(opts.exportThread ?? 'auto', rootRatioOf(headSampler))
  const chosen = disabled || opts.spanProcessors !== undefined ? [] : await exportersFromEnv(env, thread)
  const exporters = chosen.map(c => c.exporter)
  // Where telemetry goes, in one line a newcomer can check against their collector.
  const spans = opts.spanProcessors !== undefined && !disabled ? 'to the span processors passed in' : chosen.map(c => c.goesTo).join('; ') || 'off'
  const destinations = { spans, ...(spans === 'off' ? {} : { headSampling: samplingOf(headSampler) }), metricsPush: metricsGoTo(env, disabled) }
  const queue = {
    maxQueueSize: positiveIntFromEnv(env, 'OTEL_BSP_MAX_QUEUE_SIZE', SPAN_QUEUE_DEFAULTS.maxQueueSize),
    maxExportBatchSize: positiveIntFromEnv(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', SPAN_QUEUE_DEFAULTS.maxExportBatchSize),
    scheduledDelayMillis: positiveIntFromEnv(env, 'OTEL_BSP_SCHEDULE_DELAY', 5000),
    exportTimeoutMillis: positiveIntFromEnv(env, 'OTEL_BSP_EXPORT_TIMEOUT', 30000)
  }
  // The journey_spans_* series describe one pipeline: the first exporter's (OTLP's, with `otlp,console`).
  // A second one gets the SDK's own bounded batch processor: two counted pipelines would register the
  // same metrics twice, which stopped `OTEL_TRACES_EXPORTER=otlp,console` at start-up.
  const processors = opts.spanProcessors ?? exporters.map((exporter, i) => i === 0
    ? countedBatchProcessor({ exporter, registry, ...queue, maxConcurrentExports: opts.exportConcurrency ?? SPAN_QUEUE_DEFAULTS.maxConcurrentExports })
    : new BatchSpanProcessor({ exporter, ...queue, maxExportBatchSize: Math.min(queue.maxExportBatchSize, queue.maxQueueSize) }))
  if (disabled || processors.length === 0) {
    return { registry, tracing: undefined, destinations, lastMetricsPush, shutdown: async (timeoutMs) => { await finish(timeoutMs) } }
  }
  // The processors go through journeyTracing, which hands them to the SDK and sends stage spans straight to
  // them. Ours do nothing at onStart, so request spans go straight to them as well, unless span limits are
  // set (the SDK applies them only to the spans it builds).
  const limits = Object.keys(env).some(k => /^OTEL_.*_LIMIT$/.test(k) && env[k] !== '')
  const tracing = journeyTracing({ headSampler, spanProcessors: processors, finishedRequestSpans: opts.spanProcessors === undefined && !limits })
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  const { defaultResource, envDetector, hostDetector, osDetector, processDetector, resourceFromAttributes } = await import('@opentelemetry/resources')
  // NodeSDK installs a console diag logger of its own when it sees OTEL_LOG_LEVEL (and says on stderr that it
  // replaced ours). routeDiagnostics already applies that level to the app's log, so the SDK is built
  // without seeing the variable.
  const logLevel = process.env.OTEL_LOG_LEVEL
  delete process.env.OTEL_LOG_LEVEL
  let sdk: InstanceType<typeof NodeSDK>
  try {
    sdk = new NodeSDK({
      serviceName,
      // On top of the SDK's default resource, which a `resource` option replaces: without it the spans lacked
      // telemetry.sdk.name, .language and .version, which the specification requires of every SDK's resource.
      resource: defaultResource().merge(resourceFromAttributes({ 'service.instance.id': instanceId })),
      // The SDK's defaults minus its random instance id detector (ours is above); OTEL_RESOURCE_ATTRIBUTES still applies.
      resourceDetectors: [withoutMissingHostId(hostDetector), osDetector, processDetector, envDetector],
      ...tracing.sdkOptions,
      // Metrics go through prom-client and logs through pino: the SDK's own readers/exporters stay off.
      metricReaders: [],
      logRecordProcessors: [],
      instrumentations: []
    })
  } finally {
    if (logLevel !== undefined) process.env.OTEL_LOG_LEVEL = logLevel
  }
  sdk.start()
  return {
    registry,
    tracing,
    destinations,
    lastMetricsPush,
    async shutdown (timeoutMs) {
      await finish(timeoutMs, async () => { await sdk.shutdown() })
    }
  }
}
