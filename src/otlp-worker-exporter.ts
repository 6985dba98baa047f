// The OTLP/HTTP trace exporter with its HTTP client in a worker thread.
//
// Why: the library's HTTP transport in the serving thread made every request the server served dearer, not
// only the exports: at 1 % sampling, paired servers (GET /, CPU per request) spent 3–8 % more with it than
// with this worker (1.035 again in December 2026). It was first seen as any keep-alive POST from the
// server's own thread costing ≈ 5 % (undici ≈ 4 %; raw socket writes nothing) — a plain POST loop no longer
// does on Node 24.21 (0.98), so it is the transport's own work, not a client's mere presence; no profile
// has shown where (bench/NOTES.md, fifty-sixth session). Each export crosses threads and
// the worker has its own V8 heap, so this pays off only when exports are few: telemetry.ts chooses it
// by sampling ratio. This thread keeps the library's exporter minus its transport: the serializer (for
// protobuf the journey's own, otlp-trace-serializer.ts: the library's bytes at a third of the cost), the
// bounded concurrency queue and the SDK's exporter metrics. The worker (otlp-worker-thread.js) runs the
// library's own HTTP delegate (endpoint, headers, compression, timeout and retries from the same
// OTEL_EXPORTER_OTLP_* variables) on the bytes. Partial-success responses are not passed back (nothing
// here logs them).
import { Worker } from 'node:worker_threads'
import { createOtlpNetworkExportDelegate, OTLPExporterBase, OTLPExporterError, type ExportResponse, type IExporterTransport } from '@opentelemetry/otlp-exporter-base'
import { convertLegacyHttpOptions, createOtlpHttpExporterMetrics } from '@opentelemetry/otlp-exporter-base/node-http'
import { JsonTraceSerializer, TraceExporterMetricsHelper } from '@opentelemetry/otlp-transformer'
import { FastProtobufTraceSerializer } from './otlp-trace-serializer.ts'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace'
import { startOwnWorker } from './journey/worker-options.ts'

export type WorkerOtlpProtocol = 'http/protobuf' | 'http/json'

// The messages between this thread and the worker (otlp-worker-thread.js).
export interface WorkerConfig { contentType: string }
export interface ExportRequest { id: number, data: Uint8Array }
export type ExportReply = { id: number, ok: true } | { id: number, ok: false, error: string, code: number | undefined }

/** The worker's entry: plain JavaScript, so that the worker's isolate never loads Node's type stripper (it says why). */
export const WORKER_ENTRY = new URL('./otlp-worker-thread.js', import.meta.url)
/** The component type the SDK's own OTLP/HTTP span exporters report in their self-metrics. */
const COMPONENT_TYPE = 'otlp_http_span_exporter'
/** A worker that died is not restarted more often than this; exports in between fail at once (and are counted). */
const RESTART_AFTER_MS = 10_000
/** How much longer than the export timeout to wait for the worker's answer before giving up on it. */
const REPLY_GRACE_MS = 5_000

export interface WorkerTransportOptions {
  config: WorkerConfig
  /** The export timeout the worker applies; an answer later than this plus a grace period counts as failed. */
  timeoutMillis: number
  /** For tests: the worker's entry module. */
  workerUrl?: URL
  /** Told why, each time the worker cannot start (no thread can: Node's permission model without --allow-worker). */
  onStartFailure?: (why: string) => void
}

/**
 * The transport half: bytes in, an ExportResponse out, never a rejected promise and never a wait longer
 * than the timeout plus grace. Memory stays bounded by the exporter's concurrency limit (one request
 * body per export in flight).
 */
export function createWorkerTransport (opts: WorkerTransportOptions): IExporterTransport {
  const url = opts.workerUrl ?? WORKER_ENTRY
  let worker: Worker | undefined
  let closed = false
  let diedAt = -Infinity
  /** Why the last attempt to start the worker failed, until one succeeds. */
  let notStarted: string | undefined
  let nextId = 1
  const waiting = new Map<number, { resolve: (r: ExportResponse) => void, timer: NodeJS.Timeout }>()

  function settle (id: number, response: ExportResponse): void {
    const w = waiting.get(id)
    if (w === undefined) return
    waiting.delete(id)
    clearTimeout(w.timer)
    // Only exports in flight keep the process alive; an idle exporter never delays exit.
    if (waiting.size === 0) worker?.unref()
    w.resolve(response)
  }

  function failAll (message: string): void {
    for (const id of [...waiting.keys()]) settle(id, { status: 'failure', error: new Error(message) })
  }

  function spawn (): Worker | undefined {
    if (worker !== undefined) return worker
    if (performance.now() - diedAt < RESTART_AFTER_MS) return undefined
    let w: Worker
    try {
      w = startOwnWorker(url, { workerData: opts.config, name: 'otlp-export' })
    } catch (err) {
      // No thread can start (Node's permission model without --allow-worker): each export fails saying why,
      // as the span pipeline counts and logs failed exports, instead of a rejection nobody expects.
      diedAt = performance.now()
      const { code, message } = err as NodeJS.ErrnoException
      notStarted = `the OTLP export worker could not start (${code ?? 'Error'}: ${message.split('\n')[0]!.replace(/\.$/, '')}${code === 'ERR_ACCESS_DENIED' ? '; under --permission it needs --allow-worker' : ''})`
      opts.onStartFailure?.(notStarted)
      return undefined
    }
    notStarted = undefined
    w.unref()
    w.on('message', (reply: ExportReply) => {
      settle(reply.id, reply.ok
        ? { status: 'success' }
        : { status: 'failure', error: new OTLPExporterError(reply.error, reply.code) })
    })
    const died = (why: string): void => {
      if (worker !== w) return
      worker = undefined
      diedAt = performance.now()
      failAll(`OTLP export worker stopped: ${why}`)
    }
    w.on('error', (err) => died(err.message))
    w.on('exit', (code) => died(`exit code ${code}`))
    worker = w
    return w
  }

  // Started now, with the exporter (at start-up, before the server listens), not at the first export: a
  // worker's start and first send took 130–190 ms of CPU (a Node environment, the OTLP modules, compiling
  // them), taken at the first export from a server already serving — on one core, from its requests. Started
  // here, ≈ 100 ms of it is spent at start-up and the first send takes ≈ 25 ms (bench/NOTES.md, seventy-second
  // session). A process that exports at all exports soon (slow and failed requests are always kept), so this
  // costs no memory it would not have spent.
  spawn()

  return {
    async send (data: Uint8Array): Promise<ExportResponse> {
      if (closed) return { status: 'failure', error: new Error('OTLP exporter is shut down') }
      const w = spawn()
      if (w === undefined) return { status: 'failure', error: new Error(notStarted ?? 'OTLP export worker stopped recently; not restarted yet') }
      const id = nextId++
      return await new Promise<ExportResponse>((resolve) => {
        const timer = setTimeout(() => settle(id, { status: 'failure', error: new Error('OTLP export worker did not answer in time') }),
          opts.timeoutMillis + REPLY_GRACE_MS)
        timer.unref()
        waiting.set(id, { resolve, timer })
        if (waiting.size === 1) w.ref()
        // Moved, not copied, when the bytes own their whole ArrayBuffer (the serializer's output does). A
        // view into a shared or pooled buffer (a Node Buffer from the pool) must not be detached: copied.
        const owned = data.byteOffset === 0 && data.buffer instanceof ArrayBuffer && data.byteLength === data.buffer.byteLength && !Buffer.isBuffer(data)
        w.postMessage({ id, data } satisfies ExportRequest, owned ? [data.buffer] : [])
      })
    },
    shutdown () {
      closed = true
      const w = worker
      worker = undefined
      failAll('OTLP exporter shut down')
      void w?.terminate()
    }
  }
}

/**
 * An OTLP/HTTP trace exporter configured like the SDK's own (OTEL_EXPORTER_OTLP_* variables), sending from a
 * worker thread, which starts now; `onStartFailure` hears at once when it cannot.
 */
export function createWorkerTraceExporter (protocol: WorkerOtlpProtocol = 'http/protobuf', onStartFailure?: (why: string) => void): SpanExporter {
  const contentType = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf'
  const options = convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': contentType })
  const transport = createWorkerTransport({ config: { contentType }, timeoutMillis: options.timeoutMillis, onStartFailure })
  const serializer = protocol === 'http/json' ? JsonTraceSerializer : FastProtobufTraceSerializer
  const metrics = createOtlpHttpExporterMetrics(COMPONENT_TYPE, TraceExporterMetricsHelper, options.url, undefined)
  return new OTLPExporterBase<ReadableSpan[]>(createOtlpNetworkExportDelegate(options, serializer, metrics, transport))
}
