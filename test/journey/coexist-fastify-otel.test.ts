// The journey next to @fastify/otel, registered before it (the order docs/plugin.md gives for using both):
// each request stays one trace, the journey's request span under @fastify/otel's.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { dbQuery, listenLocal } from '../helpers/app.ts'
import { ancestry } from '../helpers/spans.ts'

const exporter = new InMemorySpanExporter()
let sdk: NodeSDK
let app: FastifyInstance
let base: string

before(async () => {
  const tracing = journeyTracing({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const fastifyOtel = new FastifyOtelInstrumentation()
  sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [], logRecordProcessors: [], instrumentations: [fastifyOtel as never] })
  sdk.start()
  const journey = createJourney({ registry: new Registry(), tracing })
  app = Fastify({ serverFactory: journey.serverFactory({ keepAliveTimeout: 5000 }) })
  await app.register(fastifyOtel.plugin())
  await app.register(journey.plugin)
  app.get('/work', dbQuery)
  base = await listenLocal(app)
})
after(async () => { await app.close(); await sdk.shutdown() })

test('each request is one trace: the journey\'s request span, its stages and the handler\'s spans under @fastify/otel\'s request span', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await request(base + '/work')
    assert.equal(r.statusCode, 200)
    await r.body.text()
  }
  await sleep(50)
  const spans = exporter.getFinishedSpans()
  assert.equal(new Set(spans.map(s => s.spanContext().traceId)).size, 3, 'three requests, three traces')
  const requests = spans.filter(s => s.name === 'GET /work')
  assert.equal(requests.length, 3)
  for (const r of requests) {
    assert.equal(ancestry(spans, r).at(-1), 'request', '@fastify/otel\'s request span is the root')
    const inTrace = spans.filter(s => s.spanContext().traceId === r.spanContext().traceId)
    assert.ok(inTrace.filter(s => s.name.startsWith('journey.')).every(s => s.parentSpanContext?.spanId === r.spanContext().spanId))
    const db = inTrace.find(s => s.name === 'db.query')
    assert.ok(db !== undefined && !ancestry(spans, db).includes('(missing)'))
  }
})
