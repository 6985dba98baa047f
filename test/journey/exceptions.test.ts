// Exceptions on traces: on by default, as the SDK's recordException() writes them; `recordExceptions: false`
// (JOURNEY_RECORD_EXCEPTIONS=false in the demo) keeps what an app's errors say out of its traces.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { roots, waterfall } from '../helpers/spans.ts'
import { tracedJourney, type TracedJourney } from '../helpers/traced.ts'

test('the error a handler threw is an exception event on its handler span, unless recordExceptions is false', async () => {
  const apps: TracedJourney[] = []
  try {
    for (const [route, recordExceptions] of [['/recorded', true], ['/withheld', false]] as const) {
      const t = tracedJourney({ journey: { recordExceptions } })
      apps.push(t)
      await t.app.register(t.journey.plugin)
      t.app.get(route, async () => { throw new Error('order 42 of SECRET-CUSTOMER failed') })
      const r = await request(`http://127.0.0.1:${await t.listen()}${route}`)
      assert.equal(r.statusCode, 500)
      await r.body.text()
    }
    await new Promise(resolve => setTimeout(resolve, 20))
    const all = apps.flatMap(t => t.spans.getFinishedSpans())
    const recorded = waterfall(all, roots(all, '/recorded')[0]!)
    const handler = recorded.stages.find(s => s.name === 'journey.handler')!
    const event = handler.events.find(e => e.name === 'exception')
    assert.equal(event?.attributes?.['exception.type'], 'Error')
    assert.equal(event?.attributes?.['exception.message'], 'order 42 of SECRET-CUSTOMER failed')
    assert.match(String(event?.attributes?.['exception.stacktrace']), /exceptions\.test\.ts/)
    assert.equal(handler.attributes['error.type'], 'Error')
    const withheld = waterfall(all, roots(all, '/withheld')[0]!)
    const dump = JSON.stringify([withheld.root, ...withheld.stages].map(s => ({ attributes: s.attributes, events: s.events, status: s.status })))
    assert.ok(!dump.includes('SECRET-CUSTOMER'), 'nothing the error says')
    assert.ok([withheld.root, ...withheld.stages].every(s => s.events.length === 0))
    const cut = withheld.stages.find(s => s.name === 'journey.handler')!
    assert.equal(cut.status.code, 2, 'the stage still failed')
    assert.equal(withheld.root.attributes['error.type'], '500', 'and the request still says how')
  } finally {
    for (const t of apps) await t.close()
  }
})

test('a body stream that fails after its headers went out: its error cut the write stage, where the exception event is; one failing before them is Fastify\'s 500, the error once', async () => {
  const t = tracedJourney()
  try {
    await t.app.register(t.journey.plugin)
    /** A body that sends `chunks` chunks, then fails. */
    const failing = (chunks: number): Readable => {
      let sent = 0
      return new Readable({
        read () {
          if (sent++ < chunks) setTimeout(() => this.push('x'.repeat(100)), 5)
          else this.destroy(new Error('cursor lost'))
        }
      })
    }
    t.app.get('/late', async (_request, reply) => reply.type('text/plain').send(failing(2)))
    t.app.get('/early', async (_request, reply) => reply.type('text/plain').send(failing(0)))
    const port = await t.listen()
    const late = await request(`http://127.0.0.1:${port}/late`)
    assert.equal(late.statusCode, 200)
    await assert.rejects(late.body.text(), 'the client sees the connection cut mid-body')
    const early = await request(`http://127.0.0.1:${port}/early`)
    assert.equal(early.statusCode, 500)
    await early.body.text()
    await new Promise(resolve => setTimeout(resolve, 50))
    const all = t.spans.getFinishedSpans()

    const cut = waterfall(all, roots(all, '/late')[0]!)
    assert.equal(cut.root.attributes['journey.aborted_by'], 'server')
    const write = cut.stages.find(s => s.name === 'journey.write')!
    assert.deepEqual(write.events.map(e => [e.name, e.attributes?.['exception.message']]), [['exception', 'cursor lost']])
    assert.equal(write.status.message, 'cursor lost')
    assert.ok(Number(cut.root.attributes['journey.gap.error_handler_ms']) > 0, 'Fastify logging it and destroying the connection: error handling')

    const failed = waterfall(all, roots(all, '/early')[0]!)
    const events = [failed.root, ...failed.stages].flatMap(s => s.events.map(e => `${s.name}: ${String(e.attributes?.['exception.message'])}`))
    assert.equal(events.length, 1, events.join('; '))
    assert.match(events[0]!, /: cursor lost$/)
  } finally {
    await t.close()
  }
})
