// The wall clock stepped under a running server (NTP's first sync after a start at boot, a VM or laptop
// resumed): the journey's spans follow it, as the SDK's own spans do, so the app's spans stay inside their
// parent's handler stage and the trace sits at the right time. Simulated by moving Date.now(), which is
// what the OpenTelemetry SDK reads; the monotonic clock, like the kernel's, does not move.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { dbQuery, listenLocal } from '../helpers/app.ts'

const exporter = new InMemorySpanExporter()
let sdk: NodeSDK
let app: FastifyInstance
let base: string
const wallNow = Date.now

before(async () => {
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [], logRecordProcessors: [], instrumentations: [] })
  sdk.start()
  const journey = createJourney({ registry: new Registry(), tracing })
  app = Fastify({ serverFactory: journey.serverFactory() })
  await app.register(journey.plugin)
  app.get('/work', dbQuery) // a span of the app's own, started after an await, as a database call's would be
  base = await listenLocal(app)
})
after(async () => {
  Date.now = wallNow
  await app.close()
  await sdk.shutdown()
})

const ms = (t: [number, number]): number => t[0] * 1000 + t[1] / 1e6
// How much earlier than the handler stage the app's span may seem to start: the SDK stamps it with Date.now(),
// whole milliseconds (up to 1 ms early), and the journey's anchor on the wall clock is good to about half a
// millisecond once it has followed a step (it reads Date.now() too).
const EARLY_MS = 2

/** One traced GET /work; its handler stage, the app's db.query span and the request span. */
async function work (): Promise<{ handler: ReadableSpan, db: ReadableSpan, root: ReadableSpan, sentAt: number }> {
  exporter.reset()
  const sentAt = Date.now()
  const r = await request(`${base}/work`)
  await r.body.text()
  await sleep(30)
  const spans = exporter.getFinishedSpans()
  const find = (pred: (s: ReadableSpan) => boolean): ReadableSpan => {
    const s = spans.find(pred)
    assert.ok(s, spans.map(x => x.name).join(', '))
    return s
  }
  return { handler: find(s => s.name === 'journey.handler'), db: find(s => s.name === 'db.query'), root: find(s => s.name === 'GET /work'), sentAt }
}

test('a thread kept off the core between its two clock reads is not taken for a stepped wall clock', async () => {
  // Date.now() as a descheduled thread sees it: it returns the right time, 5 ms after the journey's
  // monotonic read before it. Only the journey's own comparison is delayed (the SDK's spans read the true time).
  let delayed = 0
  Date.now = () => {
    if (new Error().stack?.includes('followWallClock') === true) {
      delayed++
      const until = performance.now() + 5
      while (performance.now() < until);
    }
    return wallNow()
  }
  try {
    // First in this file: the journey's anchor is still the process's own, which no step has moved.
    await sleep(300) // the journey compares the clocks at most every 250 ms
    const { handler, db } = await work()
    assert.ok(delayed > 0, 'the journey compared the clocks through the delayed Date.now()')
    assert.ok(ms(db.startTime) >= ms(handler.startTime) - EARLY_MS, `db.query starts ${(ms(db.startTime) - ms(handler.startTime)).toFixed(2)} ms after the handler stage`)
    assert.ok(ms(db.endTime) <= ms(handler.endTime) + 1, `db.query ends ${(ms(db.endTime) - ms(handler.endTime)).toFixed(2)} ms after the handler stage`)
  } finally {
    Date.now = wallNow
  }
})

for (const step of [0, 60_000, -60_000]) {
  test(`wall clock stepped by ${step / 1000} s: the app's span stays inside the handler stage, the trace at the wall clock's time`, async () => {
    Date.now = () => wallNow() + step
    try {
      await sleep(300) // the journey compares the clocks at most every 250 ms
      const { handler, db, root, sentAt } = await work()
      assert.ok(ms(db.startTime) >= ms(handler.startTime) - EARLY_MS, `db.query starts ${(ms(db.startTime) - ms(handler.startTime)).toFixed(2)} ms after the handler stage`)
      assert.ok(ms(db.endTime) <= ms(handler.endTime) + 1, `db.query ends ${(ms(db.endTime) - ms(handler.endTime)).toFixed(2)} ms after the handler stage`)
      const off = ms(root.startTime) - sentAt
      assert.ok(off > -2 && off < 100, `the request span starts ${off.toFixed(1)} ms after the client sent it, by the wall clock`)
    } finally {
      Date.now = wallNow
    }
  })
}

test('with tracing off, the journey page\'s request times follow a stepped wall clock too', async () => {
  const journey = createJourney({ registry: new Registry() })
  const plain = Fastify({ serverFactory: journey.serverFactory() })
  await plain.register(journey.plugin)
  plain.get('/', async () => 'ok')
  const url = await listenLocal(plain)
  void journey.recent // starts collecting
  Date.now = () => wallNow() + 30_000 // a step no span build has seen: only the page can follow it
  try {
    await sleep(300)
    const sentAt = Date.now()
    await (await request(url)).body.text()
    await sleep(30)
    const [row] = journey.recent.snapshot().recent
    assert.ok(row)
    const off = row.at - sentAt
    assert.ok(off > -2 && off < 100, `the page says the request came ${off.toFixed(1)} ms after the client sent it, by the wall clock`)
  } finally {
    Date.now = wallNow
    await plain.close()
    journey.close()
  }
})
