// journey.handler.sync_ms: how much of the handler stage was the handler's synchronous part (its call, until
// it returned or first awaited) — the time it held the event loop, against the time it
// waited. Checked with handlers that spend known times computing and waiting.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney, summarize, type JourneySummary } from '../../src/journey/index.ts'
import { renderRow } from '../../src/journey/page.ts'
import { connect, responses } from '../helpers/raw.ts'
import { durationMs, roots, stage, waterfall } from '../helpers/spans.ts'
import { busy } from '../helpers/busy.ts'
import { tracedJourney } from '../helpers/traced.ts'

const SYNC = 'journey.handler.sync_ms'


test('sync_ms: a handler that computes is synchronous for its whole stage; one that waits, only for its part before the await', async () => {
  const t = tracedJourney()
  const summaries = new Map<string, JourneySummary | undefined>()
  try {
    const view = t.journey.recent
    await t.app.register(t.journey.plugin)
    t.app.addHook('onResponse', async (request) => {
      const rec = request.journey
      if (rec !== null) setImmediate(() => { summaries.set(request.routeOptions.url!, summarize(rec)) })
    })
    // Sends from inside its call: the handler stage ends before the call returns.
    t.app.get('/sync', (_request, reply) => { busy(20); reply.send({ ok: true }) })
    t.app.get('/async-cpu', async () => { busy(20); return { ok: true } })
    t.app.get('/wait', async () => {
      busy(5)
      await sleep(20)
      return { ok: true }
    })
    // What sync_ms cannot see: work after an await, even of a value already there (the same turn, no waiting).
    t.app.get('/after-await', async () => {
      await null
      busy(10)
      return { ok: true }
    })
    t.app.get('/throws', () => { throw new Error('no') })
    const c = await connect(await t.listen())
    for (const path of ['/sync', '/async-cpu', '/wait', '/after-await', '/throws']) {
      await c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
      await c.read(responses(1))
    }
    c.close()
    await sleep(30)

    const all = t.spans.getFinishedSpans()
    const handlerOf = (route: string) => stage(waterfall(all, roots(all, route)[0]!), 'handler')!
    const sync = handlerOf('/sync')
    // (To the µs: a span's times are epoch HrTimes, which hold the monotonic clock's ns only to ≈ 0.1 µs.)
    assert.ok(Math.abs((sync.attributes[SYNC] as number) - durationMs(sync)) < 0.001, `sent from inside the call: all of the stage, ${sync.attributes[SYNC]} of ${durationMs(sync)} ms`)
    assert.ok((sync.attributes[SYNC] as number) >= 19.5)

    const asyncCpu = handlerOf('/async-cpu')
    const cpu = asyncCpu.attributes[SYNC] as number
    assert.ok(cpu >= 19.5 && cpu <= durationMs(asyncCpu), `an async handler that never waits: ${cpu} of ${durationMs(asyncCpu)} ms`)

    const wait = handlerOf('/wait')
    const part = wait.attributes[SYNC] as number
    assert.ok(part >= 4.5 && part < 15, `5 ms of work before a 20 ms wait: ${part} ms synchronous`)
    // (+ 18.5: a 20 ms timer may fire up to 1 ms early, Node counting its timers in whole ms — measured 19.2 ms.)
    assert.ok(durationMs(wait) >= part + 18.5, `of a ${durationMs(wait)} ms stage, ${part} ms of it synchronous`)

    const afterAwait = handlerOf('/after-await')
    assert.ok((afterAwait.attributes[SYNC] as number) < 2 && durationMs(afterAwait) >= 9.5, `computing after an await reads as waiting: ${afterAwait.attributes[SYNC]} of ${durationMs(afterAwait)} ms (docs/stages.md says so)`)

    assert.equal(handlerOf('/throws').attributes[SYNC], undefined, 'a handler that threw: its call never returned')

    // The log line and the page say the same as the span.
    assert.ok(Math.abs(summaries.get('/wait')!.handlerSyncMs! - part) <= 0.0006, `summary ${summaries.get('/wait')!.handlerSyncMs} against span ${part}`)
    const rows = view.snapshot().recent
    const title = (route: string): string => /title="(handler [^"]*)"/.exec(renderRow(rows.find(r => r.route === route)!))![1]!
    assert.match(title('/wait'), /; its synchronous part \(until it returned or first awaited\) held the event loop for [\d.]+ ms$/)
    assert.match(title('/sync'), /; all of it synchronous: the event loop served nothing else meanwhile$/)
    // A tick where the handler began to wait; none for one synchronous to its end.
    const tick = (route: string) => /class="mark" style="left:([\d.]+)%" title="the handler returned[^"]*, ([\d.]+) ms into handler"/.exec(renderRow(rows.find(r => r.route === route)!))
    const waitTick = tick('/wait')
    assert.ok(waitTick !== null && Math.abs(Number(waitTick[2]) - part) < 0.01, `the /wait tick: ${waitTick?.[0]}`)
    assert.equal(tick('/sync'), null)
  } finally {
    await t.close()
  }
})

test('sync_ms is not measured in a metrics-only journey', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  let summary: JourneySummary | undefined
  try {
    await app.register(journey.plugin)
    app.addHook('onResponse', async (request) => {
      const rec = request.journey
      if (rec !== null) setImmediate(() => { summary = summarize(rec) })
    })
    app.get('/', async () => { busy(5); return { ok: true } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const c = await connect((app.server.address() as { port: number }).port)
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await c.read(responses(1))
    c.close()
    await sleep(30)
    assert.ok(summary !== undefined && summary.stages.handler! >= 4.5, JSON.stringify(summary))
    assert.equal(summary.handlerSyncMs, undefined)
  } finally {
    await app.close()
    journey.close()
  }
})
