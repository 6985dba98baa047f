// Starts the real server in this test process on ephemeral ports, with the real OpenTelemetry SDK
// exporting to an in-memory exporter. One per test file: the SDK registers itself globally.
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace'
import pino from 'pino'
import { Agent } from 'undici'
import { loadConfig } from '../../src/config.ts'
import { startTelemetry, type Telemetry } from '../../src/telemetry.ts'
import { startServer, type RunningServer } from '../../src/server.ts'

export interface TestServer {
  server: RunningServer
  telemetry: Telemetry
  exporter: InMemorySpanExporter
  http: string
  https: string
  admin: string
  /** undici dispatcher that accepts the generated development certificate. */
  insecure: Agent
  /** Polls until the exporter holds spans matching `pred` (spans are built when a response finishes). */
  spansWhere: (pred: (spans: ReadableSpan[]) => boolean, timeoutMs?: number) => Promise<ReadableSpan[]>
  close: () => Promise<void>
}

export async function startTestServer (env: Record<string, string> = {}): Promise<TestServer> {
  const config = loadConfig({
    HOST: '127.0.0.1', HTTP_PORT: '0', HTTPS_PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'silent', ...env
  })
  const exporter = new InMemorySpanExporter()
  const log = pino({ level: config.logLevel })
  const telemetry = await startTelemetry(config.serviceName, log, {
    env: { ...env },
    spanProcessors: [new SimpleSpanProcessor({ exporter })]
  })
  const server = await startServer(config, telemetry, log)
  const insecure = new Agent({ connect: { rejectUnauthorized: false } })
  return {
    server,
    telemetry,
    exporter,
    http: `http://127.0.0.1:${server.ports.http}`,
    https: `https://127.0.0.1:${server.ports.https}`,
    admin: `http://127.0.0.1:${server.ports.metrics}`,
    insecure,
    async spansWhere (pred, timeoutMs = 3000) {
      const end = Date.now() + timeoutMs
      for (;;) {
        const spans = exporter.getFinishedSpans()
        if (pred(spans)) return spans
        if (Date.now() > end) throw new Error(`spans did not match in ${timeoutMs} ms; have: ${spans.map(s => s.name).join(', ')}`)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    },
    async close () {
      await insecure.close()
      await server.close()
      await telemetry.shutdown(1000)
    }
  }
}
