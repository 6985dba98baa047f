// The OTLP/HTTP exporter whose HTTP client runs in a worker thread (src/otlp-worker-exporter.ts): it must
// put on the wire exactly what the library's serializer makes, keep HTTP off the serving thread, report
// failures as failures, and never hang or hold the process.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import diagnostics from 'node:diagnostics_channel'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Worker } from 'node:worker_threads'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace'
import { createWorkerTraceExporter, createWorkerTransport } from '../src/otlp-worker-exporter.ts'

interface Received { path: string | undefined, contentType: string | undefined, body: Buffer }

async function receiver (status = 200, delayMs = 0): Promise<{ url: string, received: Received[], server: Server }> {
  const received: Received[] = []
  const server = createServer((req: IncomingMessage, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      received.push({ path: req.url, contentType: req.headers['content-type'], body: Buffer.concat(parts) })
      setTimeout(() => { res.statusCode = status; res.end() }, delayMs)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  after(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, received, server }
}

function spans (n: number): ReadableSpan[] {
  const memory = new InMemorySpanExporter()
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] })
  const tracer = provider.getTracer('worker-exporter-test')
  for (let i = 0; i < n; i++) tracer.startSpan(`span ${i}`, { attributes: { i } }).end()
  return memory.getFinishedSpans()
}

/** A new exporter sending to `url` (the exporter and its worker read the endpoint from the environment). */
function exporterFor (url: string, protocol: 'http/protobuf' | 'http/json' = 'http/protobuf', timeoutMs = 10_000): SpanExporter {
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = url
  process.env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = String(timeoutMs)
  try {
    return createWorkerTraceExporter(protocol)
  } finally {
    // The worker starts with the exporter and copies the environment then; the exporter here reads it too.
    after(() => { delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; delete process.env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT })
  }
}

async function exportOnce (exporter: SpanExporter, batch: ReadableSpan[]): Promise<ExportResult> {
  return await new Promise(resolve => exporter.export(batch, resolve))
}

test('sends exactly the bytes the OTLP protobuf serializer makes, from a worker thread: the serving thread makes no HTTP request', async () => {
  const { url, received } = await receiver()
  const exporter = exporterFor(url)
  const batch = spans(20)
  const clientRequests: unknown[] = []
  const onClientRequest = (m: unknown): void => { clientRequests.push(m) }
  diagnostics.subscribe('http.client.request.start', onClientRequest)
  try {
    const result = await exportOnce(exporter, batch)
    assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error))
  } finally {
    diagnostics.unsubscribe('http.client.request.start', onClientRequest)
  }
  assert.equal(received.length, 1)
  assert.equal(received[0]!.path, '/v1/traces')
  assert.equal(received[0]!.contentType, 'application/x-protobuf')
  assert.deepEqual(new Uint8Array(received[0]!.body), ProtobufTraceSerializer.serializeRequest(batch))
  // diagnostics_channel is per thread: a request made by this thread would have been published here.
  assert.equal(clientRequests.length, 0, 'the export went out through an HTTP client on the serving thread')
  await exporter.shutdown()
})

test('http/json sends OTLP JSON with its content type', async () => {
  const { url, received } = await receiver()
  const exporter = exporterFor(url, 'http/json')
  const result = await exportOnce(exporter, spans(3))
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error))
  assert.equal(received[0]!.contentType, 'application/json')
  const body = JSON.parse(received[0]!.body.toString()) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ name: string }> }> }> }
  assert.deepEqual(body.resourceSpans[0]!.scopeSpans[0]!.spans.map(s => s.name), ['span 0', 'span 1', 'span 2'])
  await exporter.shutdown()
})

test('a collector that rejects the batch makes the export fail with its status code', async () => {
  const { url } = await receiver(400)
  const exporter = exporterFor(url)
  const result = await exportOnce(exporter, spans(2))
  assert.equal(result.code, ExportResultCode.FAILED)
  assert.equal((result.error as { code?: number }).code, 400)
  await exporter.shutdown()
})

test('no collector listening: the export fails within its timeout instead of hanging', async () => {
  const { url, server } = await receiver()
  await new Promise<void>(resolve => server.close(() => resolve()))
  const exporter = exporterFor(url, 'http/protobuf', 1500)
  const t0 = performance.now()
  const result = await exportOnce(exporter, spans(2))
  const took = performance.now() - t0
  assert.equal(result.code, ExportResultCode.FAILED)
  assert.ok(took < 1500 + 5000, `took ${took} ms`)
  await exporter.shutdown()
})

test('shutdown waits for an export in flight to be delivered', async () => {
  const { url, received } = await receiver(200, 300)
  const exporter = exporterFor(url)
  let result: ExportResult | undefined
  exporter.export(spans(5), r => { result = r })
  await exporter.shutdown()
  assert.equal(received.length, 1)
  assert.equal(result?.code, ExportResultCode.SUCCESS)
})

test('the worker starts with the exporter, not at its first export', async () => {
  // Its start (a Node environment, the OTLP modules) took 130–190 ms of CPU: at the first export, from a
  // server already serving (src/otlp-worker-exporter.ts).
  const { url, received } = await receiver()
  const started: Worker[] = []
  const onThread = (w: Worker): void => { started.push(w) }
  process.on('worker', onThread)
  const exporter = exporterFor(url)
  after(() => exporter.shutdown())
  await new Promise(resolve => setImmediate(resolve)) // Node announces a new worker a tick after its start
  process.off('worker', onThread)
  assert.equal(started.length, 1, 'a worker thread started with the exporter')
  await new Promise(resolve => setTimeout(resolve, 300)) // time for it to be up (≈ 100 ms) and to misbehave
  assert.equal(received.length, 0, 'nothing is sent before an export')
  const result = await exportOnce(exporter, spans(2))
  assert.equal(result.code, ExportResultCode.SUCCESS)
  assert.equal(received.length, 1)
})

test('a worker that dies answers every export in flight with a failure, and is not restarted in a tight loop', async () => {
  const transport = createWorkerTransport({
    config: { contentType: 'application/x-protobuf' },
    timeoutMillis: 60_000,
    // Exits as soon as it starts, with the export already posted to it.
    workerUrl: new URL('data:text/javascript,setTimeout(() => process.exit(3), 50)')
  })
  const first = await transport.send(new Uint8Array([1, 2, 3]), 60_000)
  assert.equal(first.status, 'failure')
  assert.match(String(first.status === 'failure' ? first.error.message : ''), /worker stopped: exit code 3/)
  const t0 = performance.now()
  const second = await transport.send(new Uint8Array([4]), 60_000)
  assert.equal(second.status, 'failure')
  assert.match(String(second.status === 'failure' ? second.error.message : ''), /not restarted yet/)
  assert.ok(performance.now() - t0 < 1000)
  transport.shutdown()
})

test('after shutdown an export fails at once and starts no worker', async () => {
  let started = 0
  const transport = createWorkerTransport({
    config: { contentType: 'application/x-protobuf' },
    timeoutMillis: 1000,
    workerUrl: new URL('data:text/javascript,process.exit(0)')
  })
  transport.shutdown()
  const onThread = (): void => { started++ }
  process.on('worker', onThread)
  try {
    const r = await transport.send(new Uint8Array([1]), 1000)
    assert.equal(r.status, 'failure')
    assert.match(r.status === 'failure' ? r.error.message : '', /shut down/)
  } finally {
    process.off('worker', onThread)
  }
  assert.equal(started, 0)
})

test('an exporter that has exported and sits idle does not keep the process alive', async () => {
  const { url, received } = await receiver()
  // A script file, not `node -e`: workers inherit the parent's execArgv, and --input-type is invalid for them.
  const dir = await mkdtemp(join(tmpdir(), 'worker-exporter-'))
  after(() => rm(dir, { recursive: true, force: true }))
  const script = join(dir, 'idle.mjs')
  await writeFile(script, `
    import { createWorkerTraceExporter } from ${JSON.stringify(new URL('../src/otlp-worker-exporter.ts', import.meta.url).href)}
    import { TracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from ${JSON.stringify(import.meta.resolve('@opentelemetry/sdk-trace'))}
    const memory = new InMemorySpanExporter()
    new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] }).getTracer('t').startSpan('s').end()
    createWorkerTraceExporter().export(memory.getFinishedSpans(), r => console.log('result', r.code, r.error?.message ?? ''))
  `)
  const t0 = performance.now()
  const { stdout } = await promisify(execFile)(process.execPath, [script], {
    env: { ...process.env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: url },
    timeout: 20_000
  })
  assert.match(stdout, /result 0/)
  assert.equal(received.length, 1)
  // Exits once the export is answered: nothing (the worker, a timer) holds it for the 10 s export timeout.
  assert.ok(performance.now() - t0 < 8_000, `exited after ${performance.now() - t0} ms`)
})
