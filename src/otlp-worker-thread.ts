// The worker half of otlp-worker-exporter.ts: receives serialized OTLP requests and sends them with the
// library's own Node HTTP delegate (endpoint, headers, compression, timeout and retries from the
// OTEL_EXPORTER_OTLP_* variables, which the worker inherits). It answers every request exactly once.
import { parentPort, workerData } from 'node:worker_threads'
import { ExportResultCode } from '@opentelemetry/core'
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base'
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http'

export interface WorkerConfig { contentType: string }
export interface ExportRequest { id: number, data: Uint8Array }
export type ExportReply = { id: number, ok: true } | { id: number, ok: false, error: string, code: number | undefined }

if (parentPort !== null) {
  const port = parentPort
  const { contentType } = workerData as WorkerConfig
  // The bytes arrive serialized; this delegate only sends them. Its self-metrics count nothing here: the
  // exporter on the serving thread reports them.
  const passThrough = { serializeRequest: (bytes: Uint8Array) => bytes, deserializeResponse: () => ({}) }
  const delegate = createOtlpHttpExportDelegate(
    convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': contentType }),
    passThrough, 'otlp_http_span_exporter', { name: 'span', countItems: () => 0 }, undefined)
  port.on('message', ({ id, data }: ExportRequest) => {
    delegate.export(data, (result) => {
      const reply: ExportReply = result.code === ExportResultCode.SUCCESS
        ? { id, ok: true }
        : { id, ok: false, error: result.error?.message ?? 'export failed', code: result.error instanceof OTLPExporterError ? result.error.code : undefined }
      port.postMessage(reply)
    })
  })
}
