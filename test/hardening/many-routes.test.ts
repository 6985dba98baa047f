// /metrics with many routes: series grow with routes × stages (bounded by the app, never by URLs).
// Rendering happens on the event loop: with 500 routes it takes hundreds of milliseconds here, which no test
// can hold on these machines (a busy one took 1.4 s): npm run bench:scrape measures it against prom-client's
// own metrics with the same series, and docs/hardening.md reports that. Built with the public API, as another app would.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { Pool, request } from 'undici'
import { createJourney } from '../../src/journey/index.ts'

const registry = new Registry()
let app: FastifyInstance
let base: string
const ROUTES = 500

before(async () => {
  const journey = createJourney({ registry })
  app = Fastify({ serverFactory: journey.serverFactory() })
  await app.register(journey.plugin)
  for (let i = 0; i < ROUTES; i++) app.get(`/r${i}/:id`, async () => ({ i }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
})
after(async () => { await app.close() })

test(`${ROUTES} routes, each requested: one series set per route, rendered in one scrape`, async (ctx) => {
  const pool = new Pool(base, { connections: 4, pipelining: 4 })
  await Promise.all(Array.from({ length: ROUTES * 2 }, (_, i) => pool.request({ method: 'GET', path: `/r${i % ROUTES}/${i}` }).then(r => r.body.dump())))
  await pool.close()
  const text = await registry.metrics()
  const handlerSeries = text.split('\n').filter(l => l.startsWith('journey_stage_duration_seconds_count{stage="handler"')).length
  ctx.diagnostic(`${text.split('\n').length} lines`)
  assert.equal(handlerSeries, ROUTES, 'one handler series per route template, not per URL')
  const r = await request(`${base}/r1/x`)
  assert.equal(r.statusCode, 200)
  await r.body.dump()
})
