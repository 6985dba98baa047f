// @ts-check
// The worker half of otlp-worker-exporter.ts: receives serialized OTLP requests and sends them with the
// library's own Node HTTP delegate (endpoint, headers, compression, timeout and retries from the
// OTEL_EXPORTER_OTLP_* variables, which the worker inherits). It answers every request exactly once.
//
// Plain JavaScript (type-checked through the JSDoc below), unlike the rest of the project: a worker whose
// entry is a .ts file starts Node's TypeScript stripper in its own isolate, which cost ≈ 10 MB of RSS per
// worker here (bench/NOTES.md), and this worker runs in every process that exports over OTLP/HTTP with
// head sampling at ≤ 10 % (telemetry.ts: exportThread).
import { parentPort, workerData } from 'node:worker_threads'
import { ExportResultCode } from '@opentelemetry/core'
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base'
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http'

/** @typedef {import('./otlp-worker-exporter.ts').WorkerConfig} WorkerConfig */
/** @typedef {import('./otlp-worker-exporter.ts').ExportRequest} ExportRequest */
/** @typedef {import('./otlp-worker-exporter.ts').ExportReply} ExportReply */

if (parentPort !== null) {
  const port = parentPort
  const { contentType } = /** @type {WorkerConfig} */ (workerData)
  // The bytes arrive serialized; this delegate only sends them. Its self-metrics count nothing here: the
  // exporter on the serving thread reports them.
  const passThrough = { serializeRequest: (/** @type {Uint8Array} */ bytes) => bytes, deserializeResponse: () => ({}) }
  const options = convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': contentType })
  const delegate = createOtlpHttpExportDelegate(options, passThrough, 'otlp_http_span_exporter', { name: 'span', countItems: () => 0 }, undefined)
  // The library imports its HTTP client module at the first export; imported now, as the process starts
  // (otlp-worker-exporter.ts starts this worker with the exporter), the first export took ≈ 25 ms of CPU
  // instead of ≈ 55 (bench/NOTES.md, seventy-second session).
  void import(options.url.startsWith('https:') ? 'node:https' : 'node:http')
  port.on('message', (/** @type {ExportRequest} */ { id, data }) => {
    delegate.export(data, (result) => {
      /** @type {ExportReply} */
      const reply = result.code === ExportResultCode.SUCCESS
        ? { id, ok: true }
        : { id, ok: false, error: result.error?.message ?? 'export failed', code: result.error instanceof OTLPExporterError ? result.error.code : undefined }
      port.postMessage(reply)
    })
  })
}
