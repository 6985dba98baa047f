// Where an app's own hooks land depends on whether they were added before or after the journey's: Fastify
// runs an app's hooks of one kind in the order they were added (docs/plugin.md: "register the journey before other
// plugins and hooks of your own"). Each hook busy-waits, so its time is at least what it spins; the spins are
// long enough that a stage they are not in stays well below them even on a busy host (a cold first request's
// parse took 6 ms with two busy loops beside the suite).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { channels, createJourney, summarize, type JourneySummary } from '../../src/journey/index.ts'
import { busy } from '../helpers/busy.ts'

function addHooks (app: FastifyInstance): void {
  app.addHook('onRequest', (_req, _reply, done) => { busy(30); done() })
  app.addHook('preHandler', (_req, _reply, done) => { busy(60); done() })
  app.addHook('onSend', (_req, _reply, payload, done) => { busy(120); done(null, payload) })
}

async function measure (hooksFirst: boolean): Promise<JourneySummary> {
  const journey = createJourney({ registry: new Registry() })
  const app = Fastify()
  if (hooksFirst) addHooks(app)
  await app.register(journey.plugin)
  if (!hooksFirst) addHooks(app)
  app.get('/', async () => ({ a: 1 }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  let summary: JourneySummary | undefined
  const sub = (r: unknown): void => { summary = summarize(r as Parameters<typeof summarize>[0]) }
  channels.request.subscribe(sub)
  try {
    const r = await request(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
    await r.body.text()
    for (let i = 0; i < 100 && summary === undefined; i++) await sleep(10)
  } finally {
    channels.request.unsubscribe(sub)
    await app.close()
    journey.close()
  }
  assert.ok(summary !== undefined)
  return summary
}

test('hooks added after the journey: onRequest and preHandler are the hooks gap, onSend is in write', async () => {
  const s = await measure(false)
  assert.ok(s.hooksMs >= 90, `hooks gap ${s.hooksMs}`)
  assert.ok(s.stages.write! >= 120, `write ${s.stages.write}`)
  assert.ok(s.stages.serialize! < 30 && s.stages.decode! < 30 && s.stages.parse! < 30, JSON.stringify(s.stages))
})

test('hooks added before the journey run before its own: counted in parse, decode and serialize instead', async () => {
  const s = await measure(true)
  assert.ok(s.stages.parse! >= 30, `parse ${s.stages.parse}`)
  assert.ok(s.stages.decode! >= 60, `decode ${s.stages.decode}`)
  assert.ok(s.stages.serialize! >= 120, `serialize ${s.stages.serialize}`)
  assert.ok(s.hooksMs < 90, `hooks gap ${s.hooksMs}`)
})
