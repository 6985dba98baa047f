// Span export that can fail without hurting serving, and says so in numbers.
//
// The SDK's BatchSpanProcessor already bounds its queue, but it only logs how many spans it dropped
// ("Dropped N spans") and never says how many exports failed. This wrapper admits at most `limit` spans
// that are queued or being exported, counts what it turns away and what the exporter failed to deliver,
// and hands everything else to the real BatchSpanProcessor unchanged. Its limit is the processor's queue
// size, so the processor itself never drops: every lost span is counted here.
import type { Context } from '@opentelemetry/api'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { BatchSpanProcessor, type ReadableSpan, type Span, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace'
import { Counter, Gauge, type Registry } from 'prom-client'

export interface CountedPipelineOptions {
  exporter: SpanExporter
  registry: Registry<any>
  maxQueueSize: number
  maxExportBatchSize: number
  scheduledDelayMillis: number
  exportTimeoutMillis: number
}

export function countedBatchProcessor (opts: CountedPipelineOptions): SpanProcessor {
  const registers = [opts.registry]
  const dropped = new Counter({ name: 'journey_spans_dropped_total', help: 'Spans not exported because the export queue was full (the collector is down or slow).', registers })
  const exported = new Counter({ name: 'journey_spans_exported_total', help: 'Spans handed to the exporter, by result.', labelNames: ['result'] as const, registers })
  let pending = 0
  new Gauge({ name: 'journey_spans_pending', help: 'Spans queued for export or being exported.', registers, collect () { this.set(pending) } })

  const exporter: SpanExporter = {
    export (spans: ReadableSpan[], done: (result: ExportResult) => void) {
      opts.exporter.export(spans, (result) => {
        pending -= spans.length
        exported.inc({ result: result.code === ExportResultCode.SUCCESS ? 'success' : 'failure' }, spans.length)
        done(result)
      })
    },
    shutdown: () => opts.exporter.shutdown(),
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
    onStart (span: Span, ctx: Context) { batch.onStart(span, ctx) },
    onEnd (span: ReadableSpan) {
      if ((span.spanContext().traceFlags & 1) === 0) return
      if (pending >= opts.maxQueueSize) { dropped.inc(); return }
      pending++
      batch.onEnd(span)
    },
    forceFlush: () => batch.forceFlush(),
    shutdown: () => batch.shutdown()
  }
}
