// A head-sampled request that finds the export queue full at its start runs untraced. What that must mean,
// seen over a real server with the real SDK and a span processor that offers admission and reservations
// (as src/journey/span-pipeline.ts does): no span of its handler recorded, an incoming trace still passed on to
// downstream calls (flagged not sampled), a trace kept at its end marked as such, and the room held by
// requests still running given back when the journey closes.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { context, propagation, trace } from '@opentelemetry/api'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { AlwaysOnSampler, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { Client } from 'undici'
import { createJourney, journeyTracing, type Journey } from '../../src/journey/index.ts'
import { fakeQueue, listenLocal } from '../helpers/app.ts'
import { roots } from '../helpers/spans.ts'

const exporter = new InMemorySpanExporter()
const { queue, admission } = fakeQueue(100)
let sdk: NodeSDK
let journey: Journey
let app: FastifyInstance
let client: Client
let propagated: Record<string, string> = {}
let unblock: (() => void) | undefined

async function work (): Promise<string> {
  await new Promise(resolve => setImmediate(resolve))
  if (unblock === undefined) await new Promise<void>(resolve => { unblock = resolve })
  return trace.getTracer('app').startActiveSpan('db.query', (span) => {
    propagated = {}
    propagation.inject(context.active(), propagated) // what a downstream call would carry
    span.end()
    return 'done'
  })
}

const INCOMING = '4bf92f3577b34da6a3ce929d0e0e4736'
const traceparent = `00-${INCOMING}-00f067aa0ba902b7-01`

before(async () => {
  const tracing = journeyTracing({
    headSampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [Object.assign(new SimpleSpanProcessor({ exporter }), admission)]
  })
  sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [], logRecordProcessors: [], instrumentations: [] })
  sdk.start()
  journey = createJourney({ registry: new Registry(), tracing })
  app = Fastify({ serverFactory: journey.serverFactory({ keepAliveTimeout: 5000 }) })
  await app.register(journey.plugin)
  app.get('/work', work)
  client = new Client(await listenLocal(app)) // one keep-alive connection: every request after the first is its second or later
  unblock = () => {}
  await send() // the app's first span: from now on the journey gives every handler a context
})
after(async () => { await client.close(); await app.close(); await sdk.shutdown() })
beforeEach(() => { exporter.reset(); queue.room = 100; unblock = () => {} })

// A function, so TypeScript does not narrow `unblock` to what the polling loop last saw.
const release = (): void => unblock?.()

/** Sends a request whose handler waits until `during` has run (released even when `during` throws). */
async function blocked (headers: Record<string, string>, during: () => void): Promise<void> {
  unblock = undefined
  const done = send(headers)
  while (unblock === undefined) await sleep(1)
  try {
    during()
  } finally {
    release()
    await done
  }
}

async function send (headers: Record<string, string> = {}): Promise<void> {
  const r = await client.request({ method: 'GET', path: '/work', headers })
  assert.equal(r.statusCode, 200)
  await r.body.text()
  await sleep(20)
}

test('with room, a sampled request under an incoming parent holds the exact room it will use', async () => {
  await blocked({ traceparent }, () => assert.equal(queue.held, 7, 'a keep-alive request: its request span and six stages'))
  assert.equal(queue.held, 0)
  const [root] = roots(exporter.getFinishedSpans(), '/work')
  assert.equal(root?.spanContext().traceId, INCOMING)
  assert.equal(root.attributes['journey.sampling.queue_full_at_start'], undefined)
  assert.ok(exporter.getFinishedSpans().some(s => s.name === 'db.query'))
})

test('queue full at its start: the handler records nothing, but downstream calls still carry the incoming trace, not sampled', async () => {
  queue.room = 0
  await send({ traceparent })
  assert.deepEqual(exporter.getFinishedSpans().map(s => s.name), [], 'refused at its end too')
  assert.match(propagated.traceparent ?? '', new RegExp(`^00-${INCOMING}-[0-9a-f]{16}-00$`),
    'the caller\'s trace id goes on, flagged not sampled (it was a fresh trace id, which cut downstream services off from the caller\'s trace)')
})

test('queue full at its start, room back by its end: kept by the head rule and marked, without its handler\'s spans', async () => {
  queue.room = 0
  await blocked({ traceparent }, () => { queue.room = 100 })
  const spans = exporter.getFinishedSpans()
  const [root] = roots(spans, '/work')
  assert.ok(root !== undefined)
  assert.equal(root.spanContext().traceId, INCOMING)
  assert.equal(root.attributes['journey.sampling.rule'], 'head')
  assert.equal(root.attributes['journey.sampling.queue_full_at_start'], true, 'the trace says why its handler\'s spans are missing')
  assert.equal(spans.some(s => s.name === 'db.query'), false)
})

test('closing the journey gives back the room held by requests still running', async () => {
  await blocked({}, () => {
    assert.equal(queue.held, 7)
    journey.close()
    assert.equal(queue.held, 0)
  })
  assert.equal(queue.held, 0, 'and its end, unseen now, gives back nothing twice')
})
