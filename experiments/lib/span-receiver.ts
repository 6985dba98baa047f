// A minimal OTLP/HTTP JSON receiver for experiments: the server under test exports the spans of the
// requests the phase-timing client traced, and the experiment joins them with what the client measured.
// Hand-written because it is twenty lines and the only thing wanted is "spans by trace id" in this
// process; a collector would be one more thing to install and start.
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedSpan {
  name: string
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  /** OTLP SpanKind: 2 = SERVER. */
  kind: number
  /** Epoch milliseconds (sub-ms precision), the clock the phase client records on too. */
  start: number
  end: number
  attributes: Record<string, string | number | boolean>
}

export interface SpanReceiver {
  /** The OTEL_EXPORTER_OTLP_ENDPOINT to give the server. */
  endpoint: string
  byTrace: (traceId: string) => ReceivedSpan[]
  /** Every span received so far, grouped by trace (traces in the order they first arrived). */
  all: () => ReceivedSpan[]
  close: () => Promise<void>
}

interface OtlpValue { stringValue?: string, intValue?: string | number, doubleValue?: number, boolValue?: boolean }
interface OtlpSpan { traceId: string, spanId: string, parentSpanId?: string, name: string, kind?: number, startTimeUnixNano: string, endTimeUnixNano: string, attributes?: Array<{ key: string, value: OtlpValue }> }

const nanosToMs = (n: string): number => Number(BigInt(n) / 1000n) / 1000

function value (v: OtlpValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return v.doubleValue
  return v.boolValue ?? ''
}

export async function startSpanReceiver (): Promise<SpanReceiver> {
  const traces = new Map<string, ReceivedSpan[]>()
  const server = createServer((req: IncomingMessage, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => { body += d })
    req.on('end', () => {
      try {
        const msg = JSON.parse(body) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> }
        for (const rs of msg.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const list = traces.get(s.traceId) ?? []
              list.push({
                name: s.name,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId === '' ? undefined : s.parentSpanId,
                kind: s.kind ?? 0,
                start: nanosToMs(s.startTimeUnixNano),
                end: nanosToMs(s.endTimeUnixNano),
                attributes: Object.fromEntries((s.attributes ?? []).map(a => [a.key, value(a.value)]))
              })
              traces.set(s.traceId, list)
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      } catch {
        res.writeHead(400).end()
      }
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    byTrace: (traceId) => traces.get(traceId) ?? [],
    all: () => [...traces.values()].flat(),
    close: () => new Promise(resolve => server.close(() => resolve()))
  }
}
