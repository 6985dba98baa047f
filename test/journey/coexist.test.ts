// The journey in a service that already runs @opentelemetry/instrumentation-http, as many do through the
// auto-instrumentations: its server span is active while Fastify routes. Each request must stay one trace
// (the journey's request span a child of that span, under its sampling decision), not become two traces
// of the same request, one from each instrumentation.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { SamplingDecision, SpanKind } from '@opentelemetry/api'
import type { NodeSDK } from '@opentelemetry/sdk-node'
import { InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, type ReadableSpan, type Sampler } from '@opentelemetry/sdk-trace'
import type { FastifyInstance } from 'fastify'
import { request } from 'undici'
import { dbQuery, journeyUnderHttpInstrumentation } from '../helpers/app.ts'

// Samples every root except those of requests sent with `x-unsampled` (the http instrumentation passes
// the request's attributes to the sampler; the header's value becomes the span's user agent here).
const rootSampler: Sampler = {
  shouldSample: (_ctx, _traceId, _name, _kind, attributes) => ({
    decision: attributes['user_agent.original'] === 'unsampled' ? SamplingDecision.NOT_RECORD : SamplingDecision.RECORD_AND_SAMPLED
  }),
  toString: () => 'unlessUnsampled'
}

const exporter = new InMemorySpanExporter()
let sdk: NodeSDK
let app: FastifyInstance
let base: string

before(async () => {
  ({ sdk, app, base } = await journeyUnderHttpInstrumentation(
    { headSampler: new ParentBasedSampler({ root: rootSampler }), spanProcessors: [new SimpleSpanProcessor({ exporter })] },
    app => { app.get('/work', dbQuery) }))
})
after(async () => { await app.close(); await sdk.shutdown() })
beforeEach(() => exporter.reset())

async function get (headers: Record<string, string> = {}): Promise<void> {
  const r = await request(base + '/work', { headers })
  assert.equal(r.statusCode, 200)
  await r.body.text()
  await sleep(20)
}

const byId = (spans: ReadableSpan[], id: string | undefined): ReadableSpan | undefined => spans.find(s => s.spanContext().spanId === id)

test('each request is one trace: the http span, the journey\'s request span under it, stages and handler spans under that', async () => {
  for (let i = 0; i < 3; i++) await get()
  const spans = exporter.getFinishedSpans()
  const httpSpans = spans.filter(s => s.kind === SpanKind.SERVER && s.instrumentationScope.name.includes('instrumentation-http'))
  assert.equal(httpSpans.length, 3)
  assert.equal(new Set(spans.map(s => s.spanContext().traceId)).size, 3, 'three requests, three traces')
  for (const http of httpSpans) {
    const trace = spans.filter(s => s.spanContext().traceId === http.spanContext().traceId)
    const request = trace.find(s => s.name === 'GET /work')
    assert.ok(request !== undefined, 'the journey\'s request span is in the http span\'s trace')
    assert.equal(request.parentSpanContext?.spanId, http.spanContext().spanId)
    const db = trace.find(s => s.name === 'db.query')
    assert.equal(db?.parentSpanContext?.spanId, request.spanContext().spanId, 'the handler\'s span is under the request span')
    const stages = trace.filter(s => s.name.startsWith('journey.'))
    assert.ok(stages.length >= 6)
    for (const s of stages) assert.equal(byId(trace, s.parentSpanContext?.spanId), request)
  }
})

test('the other instrumentation\'s decision holds: its unsampled requests make no span at all', async () => {
  for (let i = 0; i < 5; i++) await get({ 'user-agent': 'unsampled' })
  assert.deepEqual(exporter.getFinishedSpans().map(s => s.name), [])
})
