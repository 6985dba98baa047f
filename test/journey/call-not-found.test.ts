// A handler that finds nothing and passes the request on with reply.callNotFound() (what @fastify/static
// does for a missing file): Fastify then runs the not-found handler's preHandler hooks — the journey's among
// them — and that handler. All of it is the handler stage's; before, the journey's second preHandler moved
// the decode stage's end past the handler's start, so the two overlapped and the request's stages added up
// to more than its duration.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { channels, createJourney, summarize, type JourneySummary } from '../../src/journey/index.ts'

for (const own of [false, true]) {
  test(`reply.callNotFound() after the handler waited: the wait and the not-found handler are in the handler stage, and the stages add up (${own ? 'the app\'s not-found handler' : 'Fastify\'s'})`, async () => {
    const journey = createJourney({ registry: new Registry() })
    const app = Fastify()
    await app.register(journey.plugin)
    if (own) app.setNotFoundHandler(async (_request, reply) => await reply.code(404).send({ missing: true }))
    app.get('/files/*', async (_request, reply) => {
      await sleep(30) // a file looked for, not there
      reply.callNotFound()
      return reply
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const summaries: JourneySummary[] = []
    const sub = (r: unknown): void => { const s = summarize(r as Parameters<typeof summarize>[0]); if (s !== undefined) summaries.push(s) }
    channels.request.subscribe(sub)
    try {
      const r = await request(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/files/nope`)
      assert.equal(r.statusCode, 404)
      await r.body.text()
      for (let i = 0; i < 100 && summaries.length === 0; i++) await sleep(10)
    } finally {
      channels.request.unsubscribe(sub)
      await app.close()
      journey.close()
    }
    const s = summaries[0]!
    assert.ok(s.stages.handler! >= 29, `handler ${s.stages.handler}`)
    assert.ok(s.stages.decode! < 20, `decode ${s.stages.decode}`)
    // From read on: a first request's accept (and tls) are its connection's, before `ms` begins.
    const stages = Object.entries(s.stages).filter(([stage]) => stage !== 'accept' && stage !== 'tls')
    const parts = stages.reduce((sum, [, ms]) => sum + ms!, 0) + s.hooksMs + s.pipelinedMs + s.errorHandlerMs
    assert.ok(Math.abs(parts - s.ms) < 0.05, `stages and gaps ${parts.toFixed(3)} ms, the request ${s.ms} ms: ${JSON.stringify(s)}`)
  })
}
