// The journey's OTLP/protobuf span serializer (src/otlp-trace-serializer.ts) must write exactly the bytes
// the library's ProtobufTraceSerializer writes, for every field and value type a span can carry, for the
// journey's own spans, and at every length-prefix size. Spans come from the real SDK.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api'
import { hrTimeDuration, millisToHrTime, TraceState } from '@opentelemetry/core'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace'
import { FastProtobufTraceSerializer, serializeSpans } from '../src/otlp-trace-serializer.ts'
import { countSpans } from '../bench/otlp-spans.ts'
import { FinishedSpan, UNSET } from '../src/journey/finished-span.ts'

function library (spans: ReadableSpan[]): Buffer {
  return Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!)
}

function ours (spans: ReadableSpan[]): Buffer {
  return Buffer.from(serializeSpans(spans))
}

function provider (name: string): { memory: InMemorySpanExporter, provider: TracerProvider } {
  const memory = new InMemorySpanExporter()
  const resource = resourceFromAttributes({ 'service.name': name, 'service.instance.id': `${name}-1`, 'host.cpus': 2 })
  return { memory, provider: new TracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] }) }
}

// Every kind of attribute value OTLP's AnyValue carries, and the edges of each encoding.
const EVERY_VALUE: Attributes = {
  'str.ascii': 'GET /orders/:id',
  'str.empty': '',
  'str.unicode': 'café ☕ 𝄞 — naïve',
  'str.lone-surrogate': 'a\ud800b',
  'str.long': 'x'.repeat(300),
  'bool.true': true,
  'bool.false': false,
  'int.zero': 0,
  'int.small': 7,
  'int.127': 127,
  'int.128': 128,
  'int.u32max': 0xffffffff,
  'int.above32': 2 ** 40 + 12345,
  'int.max-safe': Number.MAX_SAFE_INTEGER,
  'int.big': 2 ** 62,
  'int.negative': -1,
  'int.negative-big': -(2 ** 40) - 3,
  'double.fraction': 1.5,
  'double.tiny': 5e-324,
  'double.huge': 2 ** 64,
  'double.nan': NaN,
  'double.inf': -Infinity,
  'arr.str': ['a', 'ü', ''],
  'arr.num': [1, 2.5, -3],
  'arr.bool': [true, false],
  'arr.empty': [],
  'arr.holes': ['a', null, undefined, 'b'] as string[]
}

test('writes the same bytes as the library for every field a span carries: attributes of every type, events, links, trace state, status, kinds, remote parents', () => {
  const { memory, provider: p } = provider('every-field')
  const tracer = p.getTracer('scope-a', '1.2.3')
  const other = p.getTracer('scope-b')
  const remote = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true,
    traceState: new TraceState('vendor=abc,other=1')
  })
  const root = tracer.startSpan('root é', {
    kind: SpanKind.SERVER,
    attributes: EVERY_VALUE,
    links: [
      { context: { traceId: 'ABCDEF0123456789abcdef0123456789', spanId: '0123456789ABCDEF', traceFlags: 0, isRemote: true, traceState: new TraceState('k=v') }, attributes: { why: 'retry', n: 2 } },
      { context: { traceId: '11111111111111111111111111111111', spanId: '2222222222222222', traceFlags: 1 } }
    ]
  }, remote)
  root.addEvent('no attributes')
  root.addEvent('with attributes', { 'exception.type': 'Error', count: 3, ok: false })
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'boom ☠' })
  const ctx = trace.setSpan(context.active(), root)
  for (const kind of [SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER]) {
    const child = tracer.startSpan(`child ${kind}`, { kind }, ctx)
    child.setStatus({ code: SpanStatusCode.OK })
    child.end()
    other.startSpan(`other ${kind}`, { kind, attributes: { k: kind } }, ctx).end()
  }
  tracer.startSpan('unset status, no parent').end()
  root.end()
  const spans = memory.getFinishedSpans()
  assert.ok(spans.length >= 10)
  assert.equal(ours(spans).toString('hex'), library(spans).toString('hex'))
  assert.equal(countSpans(serializeSpans(spans)), spans.length)
})

test('groups spans by resource and scope as the library does, however they interleave', () => {
  const a = provider('service-a')
  const b = provider('service-b')
  const interleaved: ReadableSpan[] = []
  for (let i = 0; i < 6; i++) {
    a.provider.getTracer(i % 2 === 0 ? 'x' : 'y').startSpan(`a${i}`).end()
    b.provider.getTracer('z', '9').startSpan(`b${i}`, { attributes: { i } }).end()
    interleaved.push(a.memory.getFinishedSpans().at(-1)!, b.memory.getFinishedSpans().at(-1)!)
  }
  assert.equal(ours(interleaved).toString('hex'), library(interleaved).toString('hex'))
  assert.equal(ours([]).toString('hex'), library([]).toString('hex'))
})

test('length prefixes of every size: messages of 127, 128, 16 KiB and 2 MiB bytes and more, and batches of thousands of spans', () => {
  const { memory, provider: p } = provider('sizes')
  const tracer = p.getTracer('sizes')
  for (const n of [0, 1, 90, 100, 101, 127, 128, 200, 16_383, 16_384, 16_500, 2_097_152, 2_200_000]) {
    tracer.startSpan('s', { attributes: { v: 'y'.repeat(n) } }).end()
  }
  const big = memory.getFinishedSpans()
  assert.equal(ours(big).toString('hex'), library(big).toString('hex'))
  memory.reset()
  for (let i = 0; i < 3000; i++) tracer.startSpan(`span ${i}`, { attributes: { i, route: '/orders/:id' } }).end()
  const many = memory.getFinishedSpans()
  assert.ok(ours(many).equals(library(many)))
  assert.equal(countSpans(serializeSpans(many)), 3000)
})

test('each request gets bytes of its own: a later batch does not change an earlier one, and the bytes own their buffer (a worker can take them)', () => {
  const { memory, provider: p } = provider('reuse')
  const tracer = p.getTracer('reuse')
  tracer.startSpan('first', { attributes: { a: 'x'.repeat(3_000_000) } }).end()
  const first = memory.getFinishedSpans()
  const bytes = serializeSpans(first)
  const copy = Buffer.from(bytes)
  memory.reset()
  tracer.startSpan('second').end()
  const second = serializeSpans(memory.getFinishedSpans())
  assert.ok(Buffer.from(bytes).equals(copy), 'the first batch was overwritten')
  assert.equal(bytes.byteOffset, 0)
  assert.equal(bytes.buffer.byteLength, bytes.byteLength)
  assert.ok(Buffer.from(second).equals(library(memory.getFinishedSpans())))
})

test('the serializer interface: requests as above, responses (partial success) decoded by the library', () => {
  const { memory, provider: p } = provider('iface')
  p.getTracer('iface').startSpan('one').end()
  const spans = memory.getFinishedSpans()
  assert.ok(Buffer.from(FastProtobufTraceSerializer.serializeRequest(spans)!).equals(library(spans)))
  // ExportTraceServiceResponse { partial_success { rejected_spans: 3, error_message: "too old" } }
  const response = Buffer.from([0x0a, 0x0b, 0x08, 0x03, 0x12, 0x07, ...Buffer.from('too old')])
  assert.deepEqual(FastProtobufTraceSerializer.deserializeResponse(response), ProtobufTraceSerializer.deserializeResponse(response))
})

test('the journey\'s finished spans, whose times are epoch milliseconds: the same bytes as the library writes from their HrTime pairs, at every rounding edge', () => {
  const { provider: p, memory } = provider('finished')
  p.getTracer('journey').startSpan('origin').end()
  const sdk = memory.getFinishedSpans()[0]!
  const origin = { resource: sdk.resource, instrumentationScope: sdk.instrumentationScope }
  const ctx = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 }
  const base = 1_796_000_000_000 // 2026-11
  // Sub-millisecond fractions that round up, down and to the next second; whole seconds; times before 2001
  // (fewer digits) and after 2038 (beyond 32-bit seconds).
  const times = [base, base + 0.0004, base + 0.0005, base + 0.0015, base + 999.9999996, base + 999.999, base + 123.456789,
    978_307_200_000.25, 2_200_000_000_000.75, 1, 0.5]
  const spans = times.map((t, i) => new FinishedSpan(origin, { ...ctx, spanId: `${i}`.padStart(16, '0') }, undefined, `s${i}`, SpanKind.INTERNAL, t, t + i * 0.3337, { i }, undefined, UNSET))
  assert.ok(ours(spans).equals(library(spans)))
  // What other processors read: the pairs the SDK would have made.
  for (const [i, s] of spans.entries()) {
    assert.deepEqual(s.startTime, millisToHrTime(times[i]!))
    assert.deepEqual(s.endTime, millisToHrTime(times[i]! + i * 0.3337))
    assert.deepEqual(s.duration, hrTimeDuration(s.startTime, s.endTime))
  }
})
