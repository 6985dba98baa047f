// Span export that can fail without hurting serving, and says so in numbers.
//
// The SDK's BatchSpanProcessor already bounds its queue, but it only logs how many spans it dropped
// ("Dropped N spans") and never says how many exports failed. This wrapper admits at most `limit` spans
// that are queued or being exported, counts what it turns away and what the exporter failed to deliver,
// and hands everything else to the real BatchSpanProcessor unchanged. Its limit is the processor's queue
// size, so the processor itself never drops: every lost span is counted here.
//
// It also lets up to `maxConcurrentExports` batches be in flight at once. The BatchSpanProcessor starts
// its next export only when the last one has called back, so it ships one batch per round trip to the
// collector, and under load that round trip waits on the busy event loop: a saturated server making ≈ 7
// spans per request dropped a quarter to more than half of them (50 and 200 connections; bench/NOTES.md).
// Bigger batches only move that limit, and each one blocks the event loop longer while it is serialized.
// The OTLP exporters are built for concurrent exports (their own bounded queue of sends, and forceFlush
// waits for every send), so this wrapper answers the processor as soon as a batch is handed over while
// fewer than the limit are in flight, and holds the answer back otherwise. Results are counted, and
// failures reported to the global error handler, here, since the processor no longer sees them.
//
// Part of the plugin so that a service gets the same pipeline, and the same journey_spans_* series (which the
// alerts in deploy/prometheus/alerts.yml read), as the demo: `countedBatchProcessor({ exporter, registry })`
// where it had `new BatchSpanProcessor({ exporter })`.
import type { Context } from '@opentelemetry/api'
import { ExportResultCode, globalErrorHandler, type ExportResult } from '@opentelemetry/core'
import { BatchSpanProcessor, type ReadableSpan, type Span, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace'
import { Counter, Gauge } from 'prom-client'
import type { SpanAdmission } from './admission.ts'
import { asPromClientRegistry, type MetricsRegistry } from './metrics-registry.ts'
import { EXPORT_METRIC } from './stages.ts'

export interface CountedBatchProcessorOptions {
  exporter: SpanExporter
  /** Where the pipeline's series go (journey_spans_dropped_total, _exported_total, _pending, _reserved): one pipeline per registry. */
  registry: MetricsRegistry
  /** Spans queued or being exported, at most (default 2048, as the SDK's processor); the rest are dropped and counted. */
  maxQueueSize?: number
  /** Spans per export (default 512, and never more than maxQueueSize). */
  maxExportBatchSize?: number
  /** How long a batch that is not full waits before it is sent (default 5000 ms). */
  scheduledDelayMillis?: number
  /** How long an export may take before the processor gives up on it (default 30000 ms). */
  exportTimeoutMillis?: number
  /**
   * Batches that may be in flight at once (default 1, the BatchSpanProcessor's own behaviour). The OTLP
   * exporters take several (the demo sends up to 8); an exporter that cannot overlap its sends needs 1.
   */
  maxConcurrentExports?: number
}

/** The SDK's BatchSpanProcessor defaults, which countedBatchProcessor keeps. */
const DEFAULTS = { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxConcurrentExports: 1 }

/**
 * The SDK's BatchSpanProcessor around `exporter`, bounded and counted: what it turns away and what the
 * exporter failed to deliver are series in `registry`, a kept request's spans are admitted whole or not at
 * all (SpanAdmission), and up to `maxConcurrentExports` batches are in flight at once.
 */
export function countedBatchProcessor (options: CountedBatchProcessorOptions): SpanProcessor & SpanAdmission {
  const opts = {
    exporter: options.exporter,
    maxQueueSize: options.maxQueueSize ?? DEFAULTS.maxQueueSize,
    maxExportBatchSize: options.maxExportBatchSize ?? DEFAULTS.maxExportBatchSize,
    scheduledDelayMillis: options.scheduledDelayMillis ?? DEFAULTS.scheduledDelayMillis,
    exportTimeoutMillis: options.exportTimeoutMillis ?? DEFAULTS.exportTimeoutMillis,
    maxConcurrentExports: options.maxConcurrentExports ?? DEFAULTS.maxConcurrentExports
  }
  const registers = [asPromClientRegistry(options.registry)]
  const dropped = new Counter({ name: EXPORT_METRIC.spansDropped, help: 'Spans not exported because the export queue was full (the collector is down or slow).', registers })
  const exported = new Counter({ name: EXPORT_METRIC.spansExported, help: 'Spans handed to the exporter, by result.', labelNames: ['result'] as const, registers })
  // Both results from 0, so the first failure (or the first success) is an increase Prometheus can see.
  exported.inc({ result: 'success' }, 0)
  exported.inc({ result: 'failure' }, 0)
  let pending = 0
  new Gauge({ name: EXPORT_METRIC.spansPending, help: 'Spans queued for export or being exported.', registers, collect () { this.set(pending) } })
  // Room held for head-sampled requests still running (SpanAdmission.reserve): part of the bound.
  let reserved = 0
  new Gauge({ name: EXPORT_METRIC.spansReserved, help: 'Room in the export queue held for sampled requests still running (counts against its maxQueueSize, OTEL_BSP_MAX_QUEUE_SIZE in the demo, with the pending spans).', registers, collect () { this.set(reserved) } })

  let inFlight = 0
  // The processor's callback for the newest batch, held back while the limit of batches was in flight.
  let held: (() => void) | undefined
  // A batch answered early that then fails is reported here: to the global error handler (the log's
  // rate-limited warning), or, while a flush or shutdown runs, by that flush rejecting, as it would have.
  let flushing = 0
  let flushError: unknown
  const failed = (err: unknown): void => {
    if (flushing > 0) flushError ??= err
    else globalErrorHandler(err as Error)
  }
  async function flush (work: () => Promise<void>): Promise<void> {
    flushing++
    try { await work() } finally { flushing-- }
    const err = flushError
    if (flushing === 0) flushError = undefined
    if (err !== undefined) throw err
  }
  const exporter: SpanExporter = {
    export (spans: ReadableSpan[], done: (result: ExportResult) => void) {
      let answered = false
      const answer = (result: ExportResult): void => { if (!answered) { answered = true; done(result) } }
      inFlight++
      opts.exporter.export(spans, (result) => {
        inFlight--
        pending -= spans.length
        const ok = result.code === ExportResultCode.SUCCESS
        exported.inc({ result: ok ? 'success' : 'failure' }, spans.length)
        if (answered && !ok) failed(result.error ?? new Error('span export failed'))
        answer(result)
        const next = held
        held = undefined
        next?.()
      })
      if (answered) return // the exporter answered at once (refused, or nothing to send)
      if (inFlight < opts.maxConcurrentExports) answer({ code: ExportResultCode.SUCCESS })
      else held = () => answer({ code: ExportResultCode.SUCCESS })
    },
    shutdown: () => opts.exporter.shutdown(),
    // The processor's flush ends when its last batch was handed over; the exporter's, when every send has finished.
    forceFlush: () => opts.exporter.forceFlush?.() ?? Promise.resolve()
  }
  const batch = new BatchSpanProcessor({
    exporter,
    maxQueueSize: opts.maxQueueSize,
    maxExportBatchSize: Math.min(opts.maxExportBatchSize, opts.maxQueueSize),
    scheduledDelayMillis: opts.scheduledDelayMillis,
    exportTimeoutMillis: opts.exportTimeoutMillis
  })

  return {
    // The journey asks before it builds a kept request's spans (SpanAdmission), so a trace is dropped whole.
    admit (spans: number): boolean {
      if (pending + reserved + spans <= opts.maxQueueSize) return true
      dropped.inc(spans)
      return false
    },
    // Refusing a reservation drops nothing yet: the request runs untraced and asks admit() at its end.
    reserve (spans: number): boolean {
      if (pending + reserved + spans > opts.maxQueueSize) return false
      reserved += spans
      return true
    },
    release (spans: number): void { reserved -= spans },
    onStart (span: Span, ctx: Context) { batch.onStart(span, ctx) },
    onEnd (span: ReadableSpan) {
      if ((span.spanContext().traceFlags & 1) === 0) return
      if (pending + reserved >= opts.maxQueueSize) { dropped.inc(); return }
      pending++
      batch.onEnd(span)
    },
    forceFlush: () => flush(async () => { await batch.forceFlush(); await exporter.forceFlush!() }),
    // The processor's shutdown flushes, then shuts the exporter down, which waits for every send.
    shutdown: () => flush(() => batch.shutdown())
  }
}
