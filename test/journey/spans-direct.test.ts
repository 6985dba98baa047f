// Spans handed straight to the processors (finished-span.ts) — stage spans, and with finishedRequestSpans
// request spans too — must be exactly what the SDK builds through tracer.startSpan(): span consumers, one
// per path, each with its own real TracerProvider and in-memory exporter, receive the same finished
// records, and every exported field is compared, and the bytes on the wire.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ROOT_CONTEXT, trace } from '@opentelemetry/api'
import { suppressTracing, TraceState } from '@opentelemetry/core'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { Registry } from 'prom-client'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan
} from '@opentelemetry/sdk-trace'
import type { SpanAdmission } from '../../src/journey/admission.ts'
import { createSpanConsumer, type SpanConsumer } from '../../src/journey/consume-spans.ts'
import { FinishedSpan } from '../../src/journey/finished-span.ts'
import { channels } from '../../src/journey/publish.ts'
import { newConnectionRecord, newRequestRecord, type RequestRecord } from '../../src/journey/records.ts'
import { JourneySampler, PresetIdGenerator } from '../../src/journey/sampling.ts'

/** sdk: every span through the tracer; stages: stage spans built finished; finished: request spans too. */
type Path = 'sdk' | 'stages' | 'finished'

function pipeline (path: Path | boolean, gate?: SpanAdmission): { exporter: InMemorySpanExporter, close: () => void, start: SpanConsumer['start'] } {
  const direct = path === true || path === 'stages' || path === 'finished'
  const exporter = new InMemorySpanExporter()
  // With `gate`, the processor offers SpanAdmission, as the app's counted export pipeline does.
  const processors = [gate === undefined ? new SimpleSpanProcessor({ exporter }) : Object.assign(new SimpleSpanProcessor({ exporter }), gate)]
  const ids = new PresetIdGenerator()
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'direct-test' }),
    sampler: new JourneySampler(new AlwaysOnSampler()),
    idGenerator: ids,
    spanProcessors: processors
  })
  const consumer = createSpanConsumer({
    tracer: provider.getTracer('request-journey'),
    processors: direct ? processors : undefined,
    finishedRequestSpans: path === 'finished',
    ids,
    headSampler: new AlwaysOnSampler(),
    sampler: undefined,
    precision: 'default',
    slowThresholdMs: 500,
    keepErrors: true,
    keepLimitPerSecond: Infinity,
    registry: new Registry(),
    recordExceptions: true,
    recordHeaders: [],
    recordResponseHeaders: []
  })
  return { exporter, close: () => consumer.close(), start: consumer.start }
}

/**
 * A first request on an HTTPS connection with every stage, one cut short when `cut` is set; head-sampled
 * under a client's traceparent, or (`tail`) kept at its end for its 500 or its abort, with no parent.
 */
function record (cut: boolean, tail = false): RequestRecord {
  const conn = newConnectionRecord('https', true, 1000)
  conn.acceptedAt = 1000.05
  conn.secureAt = 1002.5
  conn.tlsProtocol = 'TLSv1.3'
  conn.tlsCipher = 'TLS_AES_256_GCM_SHA384'
  conn.tlsResumed = false
  conn.kernel = { lastAckRecvMs: 4, lastDataRecvMs: 0, bytesReceived: 0, rttUs: 50 }
  conn.beginAt = 1002.6
  conn.headersAt = 1002.7
  const rec = newRequestRecord(conn, 'POST', '/echo', '1.1', 1002.75)
  rec.route = '/echo'
  rec.contentType = 'application/json'
  rec.requestBodyBytes = 1024
  rec.decodedBodyBytes = 1024
  rec.decodeStartAt = 1002.8
  rec.decodeEndAt = 1003.1
  rec.handlerStartAt = 1003.12
  if (cut) {
    rec.aborted = true
    rec.endAt = 1010
  } else {
    rec.handlerEndAt = 1003.4
    rec.serializeEndAt = 1003.45
    rec.writeStartAt = rec.serializeEndAt
    rec.finishAt = 1003.6
    rec.endAt = rec.finishAt
    rec.status = 200
    rec.bytesWritten = 180
  }
  rec.kernelReadWaitMs = 0
  conn.inflight.length = 0
  if (tail) {
    if (!cut) rec.status = 500
    return rec
  }
  rec.sampled = true
  rec.traceId = '0af7651916cd43dd8448eb211c80319c'
  rec.spanId = 'b7ad6b7169203331'
  // A client's traceparent and tracestate: the trace continues, and its tracestate rides on every span.
  rec.parentContext = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: rec.traceId, spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true, traceState: new TraceState('vendor=x')
  })
  return rec
}

/** Everything an exporter reads from a span, with the one random part (a stage's own span id) left out. */
function exported (s: ReadableSpan): unknown {
  const { traceId, traceFlags, traceState } = s.spanContext()
  return {
    name: s.name,
    kind: s.kind,
    traceId,
    traceFlags,
    traceState,
    parentSpanId: s.parentSpanContext?.spanId,
    startTime: s.startTime,
    endTime: s.endTime,
    duration: s.duration,
    status: s.status,
    attributes: s.attributes,
    links: s.links,
    events: s.events,
    ended: s.ended,
    resource: s.resource.attributes,
    scope: s.instrumentationScope,
    dropped: [s.droppedAttributesCount, s.droppedEventsCount, s.droppedLinksCount]
  }
}

/**
 * Two pipelines side by side, both past their first request span (which goes through the SDK on every
 * path: it gives the resource and scope), nothing exported yet; both closed after `fn`.
 */
function sideBySide (first: Path, second: Path, fn: (a: InMemorySpanExporter, b: InMemorySpanExporter) => void): void {
  const one = pipeline(first)
  const two = pipeline(second)
  try {
    channels.request.publish(record(false))
    one.exporter.reset()
    two.exporter.reset()
    fn(one.exporter, two.exporter)
  } finally {
    one.close()
    two.close()
  }
}

for (const path of ['stages', 'finished'] as const) {
  for (const [cut, tail] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const what = `${cut ? 'a request cut off in its handler' : 'a complete request'}, ${tail ? 'kept for its error, no parent' : 'head-sampled under a remote parent'}`
    test(`${path === 'stages' ? 'stage spans' : 'stage and request spans'} built finished equal the SDK's own, field by field and on the wire (${what})`, () => {
      sideBySide('sdk', path, (viaSdk, direct) => {
        // Both consumers see the same record: the first to build its spans sets the ids the second reuses.
        channels.request.publish(record(cut, tail))
        const a = viaSdk.getFinishedSpans()
        const b = direct.getFinishedSpans()
        const stages = cut ? ['accept', 'tls', 'read', 'parse', 'decode', 'handler'] : ['accept', 'tls', 'read', 'parse', 'decode', 'handler', 'serialize', 'write']
        assert.deepEqual(a.map(s => s.name), [...stages.map(s => `journey.${s}`), 'POST /echo'])
        assert.deepEqual(b.map(s => s.name), a.map(s => s.name))
        for (let i = 0; i < a.length; i++) assert.deepEqual(exported(b[i]!), exported(a[i]!), a[i]!.name)
        const request = b.at(-1)!
        assert.equal(request instanceof FinishedSpan, path === 'finished', 'the request span took the path asked for')
        assert.equal(request.spanContext().spanId, a.at(-1)!.spanContext().spanId)
        assert.equal(request.parentSpanContext?.spanId, tail ? undefined : '00f067aa0ba902b7')
        assert.equal(b[0]!.spanContext().traceState?.serialize(), tail ? undefined : 'vendor=x')
        assert.equal(request.status.code, cut || tail ? 2 : 0)
        const ids = b.map(s => s.spanContext().spanId)
        assert.equal(new Set(ids).size, ids.length, 'every span has its own id')
        for (const id of ids) assert.match(id, /^(?!0{16})[0-9a-f]{16}$/)
        if (cut) assert.equal(b.find(s => s.name === 'journey.handler')!.status.code, 2, 'the cut stage is an error')

        // And the bytes that leave: one OTLP request from each path, equal but for the stage spans' own ids.
        const idsOf = (spans: ReadableSpan[]): string[] => spans.slice(0, -1).map(s => s.spanContext().spanId)
        let bodyB = Buffer.from(ProtobufTraceSerializer.serializeRequest(b)!).toString('hex')
        const bodyA = Buffer.from(ProtobufTraceSerializer.serializeRequest(a)!).toString('hex')
        const idsA = idsOf(a)
        idsOf(b).forEach((id, i) => { bodyB = bodyB.replace(id, idsA[i]!) })
        assert.equal(bodyB, bodyA)
      })
    })
  }
}

test('without finishedRequestSpans, or before the SDK has built one, request spans go through the tracer', () => {
  const stages = pipeline('stages')
  const finished = pipeline('finished')
  try {
    channels.request.publish(record(false))
    assert.equal(stages.exporter.getFinishedSpans().at(-1) instanceof FinishedSpan, false)
    assert.equal(finished.exporter.getFinishedSpans().at(-1) instanceof FinishedSpan, false, 'the first: through the SDK, for its resource and scope')
    channels.request.publish(record(false))
    assert.equal(stages.exporter.getFinishedSpans().at(-1) instanceof FinishedSpan, false)
    assert.equal(finished.exporter.getFinishedSpans().at(-1) instanceof FinishedSpan, true)
  } finally {
    stages.close()
    finished.close()
  }
})

// The SDK answers a span started under a context that suppresses tracing with one that records nothing;
// the finished path must not build such a request span either (what the stage spans then do is the SDK
// path's, on both).
test('a request whose parent context suppresses tracing gets the SDK path\'s spans, not a finished request span', () => {
  sideBySide('sdk', 'finished', (viaSdk, finished) => {
    const rec = record(false)
    rec.parentContext = suppressTracing(rec.parentContext!)
    channels.request.publish(rec)
    const a = viaSdk.getFinishedSpans()
    const b = finished.getFinishedSpans()
    assert.equal(a.some(s => s.name === 'POST /echo'), false, 'the SDK records no request span')
    assert.deepEqual(b.map(s => s.name), a.map(s => s.name))
    assert.equal(b.some(s => s instanceof FinishedSpan), false)
  })
})

test('a kept request whose spans the export queue cannot take is dropped whole: nothing built, no trace left for exemplars', () => {
  let room = true
  const asked: number[] = []
  const p = pipeline(true, { admit: (spans) => { asked.push(spans); return room } })
  try {
    const kept = record(false)
    channels.request.publish(kept)
    assert.equal(p.exporter.getFinishedSpans().length, 9, 'eight stages and the request span')
    assert.deepEqual(asked, [9], 'asked once, for all of them, before building any')
    assert.equal(kept.keptBy, 'head')

    room = false
    p.exporter.reset()
    const refused = record(false)
    channels.request.publish(refused)
    assert.equal(p.exporter.getFinishedSpans().length, 0, 'not one span of it')
    assert.equal(refused.keptBy, undefined, 'not kept: the metrics consumer puts no exemplar on it, the journey page no trace link')
    assert.equal(refused.conn.kept, false, 'and its connection span is not kept for it')
  } finally {
    p.close()
  }
})

test('a head-sampled request holds room in the export queue from its start, so it is never refused at its end', () => {
  let room = 0
  let held = 0
  const asked: number[] = []
  const p = pipeline(true, {
    admit: (spans) => { asked.push(spans); return spans <= room },
    reserve: (spans) => { if (spans > room) return false; room -= spans; held += spans; return true },
    release: (spans) => { room += spans; held -= spans }
  })
  // A record as the Fastify observer hands it to the consumer at the request's start: not decided yet.
  const fresh = (): RequestRecord => Object.assign(record(false), { sampled: false, traceId: undefined, spanId: undefined, parentContext: undefined })
  try {
    room = 100
    const sampled = fresh()
    p.start(sampled, {})
    assert.equal(sampled.sampled, true)
    assert.equal(held, 9, 'room for the request span and every stage it can still have (first request on a TLS connection: 8), held while it runs')
    room = 0 // the queue fills up meanwhile
    channels.request.publish(sampled)
    assert.equal(held, 0, 'given back at its end')
    assert.equal(p.exporter.getFinishedSpans().length, 9, 'built from the held room')
    assert.deepEqual(asked, [], 'not asked again at its end')
    assert.equal(sampled.keptBy, 'head')

    p.exporter.reset()
    room = 0
    const untraced = fresh()
    p.start(untraced, {})
    assert.equal(untraced.sampled, false, 'no room at its start: it runs untraced')
    assert.equal(untraced.queueFull, true)
    assert.equal(untraced.traceId, undefined, 'so no trace id reaches its log lines')
    channels.request.publish(untraced)
    assert.deepEqual(asked, [9], 'asked at its end like a tail keep, and refused (counted as dropped by the processor)')
    assert.equal(p.exporter.getFinishedSpans().length, 0)

    const later = fresh()
    p.start(later, {})
    room = 100 // room came back before it ended
    channels.request.publish(later)
    assert.equal(later.keptBy, 'head', 'kept by the head decision after all, without its handler\'s spans')
    assert.equal(p.exporter.getFinishedSpans().length, 9)
    assert.equal(held, 0)
  } finally {
    p.close()
  }
})
