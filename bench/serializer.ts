// npm run bench:serializer: the journey's OTLP/protobuf span serializer (src/otlp-trace-serializer.ts)
// against the library's (@opentelemetry/otlp-transformer), on batches shaped like the journey's own at
// 100 % sampling — a request span with 12 attributes and a link to its connection, and six stage spans with
// 0–2 attributes each — built by the real SDK. Prints µs per span for each, measured in alternating rounds
// (A B A B …) so drift hits both, and their ratio. Checks first that both write the same bytes. Not a test:
// nothing here asserts a time.
//
//   npm run bench:serializer
//   ROUNDS=3 BATCHES=200 npm run bench:serializer
import { context, SpanKind, trace } from '@opentelemetry/api'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace'
import { serializeSpans } from '../src/otlp-trace-serializer.ts'
import { median } from './stats.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 6)
const BATCHES = Number(process.env.BATCHES ?? 1000)
const BATCH = 512 // the SDK's default OTEL_BSP_MAX_EXPORT_BATCH_SIZE

function journeyShapedSpans (n: number): ReadableSpan[] {
  const memory = new InMemorySpanExporter()
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] }).getTracer('request-journey', '0.1.0')
  for (let r = 0; memory.getFinishedSpans().length < n; r++) {
    const request = tracer.startSpan('GET /orders/:id', {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': 'GET', 'url.scheme': 'http', 'network.protocol.version': '1.1', 'journey.precision': 'default',
        'journey.sampling.rule': 'head', 'journey.listener': 'http', 'journey.connection.id': 1234, 'journey.request.index': r,
        'journey.gap.idle_ms': 0.412, 'journey.gap.hooks_ms': 0.018, 'http.route': '/orders/:id', 'http.response.status_code': 200
      },
      links: [{ context: { traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), traceFlags: 1 }, attributes: { 'journey.connection.id': 1234 } }]
    })
    const parent = trace.setSpan(context.active(), request)
    const stages: Array<[string, Record<string, number | boolean | string>]> = [
      ['journey.read', { 'journey.read.includes_decrypt': false, 'journey.read.kernel_wait_ms': 0 }],
      ['journey.parse', {}], ['journey.decode', {}], ['journey.handler', {}],
      ['journey.serialize', { 'journey.serialize.skipped': false }], ['journey.write', { 'journey.write.bytes': 180 }]
    ]
    for (const [name, attributes] of stages) tracer.startSpan(name, { attributes }, parent).end()
    request.end()
  }
  return memory.getFinishedSpans().slice(0, n)
}

function microsPerSpan (serialize: (spans: ReadableSpan[]) => Uint8Array | undefined, spans: ReadableSpan[]): number {
  const start = performance.now()
  for (let i = 0; i < BATCHES; i++) serialize(spans)
  return (performance.now() - start) * 1000 / BATCHES / spans.length
}

const spans = journeyShapedSpans(BATCH)
const library = (s: ReadableSpan[]): Uint8Array | undefined => ProtobufTraceSerializer.serializeRequest(s)
if (!Buffer.from(serializeSpans(spans)).equals(Buffer.from(library(spans)!))) {
  console.error('the two serializers wrote different bytes: nothing to compare')
  process.exit(1)
}
console.log(`${BATCH}-span batches shaped like the journey's, ${BATCHES} per round, ${ROUNDS} rounds each (Node ${process.version}); the same bytes from both`)
// Each warmed before it is measured, so neither is timed while V8 is still compiling it.
for (let i = 0; i < Math.min(300, BATCHES); i++) { serializeSpans(spans); library(spans) }
const ours: number[] = []
const theirs: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  theirs.push(microsPerSpan(library, spans))
  ours.push(microsPerSpan(serializeSpans, spans))
}
const fmt = (xs: number[]): string => `${median(xs).toFixed(3)} µs a span (rounds ${xs.map(x => x.toFixed(3)).join(' ')})`
console.log(`library (@opentelemetry/otlp-transformer)  ${fmt(theirs)}`)
console.log(`journey (src/otlp-trace-serializer.ts)    ${fmt(ours)}`)
console.log(`journey / library: ${(median(ours) / median(theirs)).toFixed(2)}`)
