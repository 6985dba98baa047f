// The page's view of connections: accepted per second is a rate over the time it actually watched.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'

test('accepted per second, in the view\'s first seconds, divides by the seconds watched, not by ten', async (t) => {
  const journey = createJourney({ registry: new Registry() })
  const app = Fastify()
  const sockets: Socket[] = []
  t.after(async () => {
    for (const s of sockets) s.destroy() // first: the app's close would wait for these (they never send a request)
    await app.close()
    journey.close()
  })
  await app.register(journey.plugin)
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const from = performance.now()
  const view = journey.recent // starts watching here
  for (let i = 0; i < 20; i++) sockets.push(connect(port, '127.0.0.1'))
  await Promise.all(sockets.map(async s => await once(s, 'connect')))
  for (let i = 0; i < 100 && view.snapshot().connections.active < 20; i++) await sleep(10)
  assert.equal(view.snapshot().connections.active, 20)
  // Past the next whole second of the monotonic clock (the counters' seconds): the 20 are then counted.
  await sleep(1000 - (performance.now() % 1000) + 50)
  const rate = view.snapshot().connections.acceptedPerSecond
  const watched = Math.max(1, (Math.floor(performance.now() / 1000) * 1000 - from) / 1000)
  assert.ok(watched < 10, `within the first ten seconds: ${watched} s`)
  assert.ok(Math.abs(rate - 20 / watched) < 20 / watched * 0.05, `${rate}/s: 20 connections over ≈ ${watched.toFixed(2)} s watched (ten would read 2)`)
})
