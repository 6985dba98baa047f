// A live journey page that stops reading is closed once too much waits for it, instead of having every
// second's frame held in the server for as long as it stays connected; pages that read carry on.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { Pool, request } from 'undici'
import { createJourney, type Journey } from '../../src/journey/index.ts'
import { registerJourneyPage } from '../../src/journey/page.ts'
import { listenLocal } from '../helpers/app.ts'

let journey: Journey
let app: FastifyInstance
let admin: FastifyInstance
let base: string
let adminBase: string
let stalled: Socket | undefined
let live: Awaited<ReturnType<typeof request>> | undefined

before(async () => {
  journey = createJourney({ registry: new Registry() })
  app = Fastify({ routerOptions: { maxParamLength: 10_000 } })
  await app.register(journey.plugin)
  app.get('/item/:name', async () => 'ok')
  base = await listenLocal(app)
  admin = Fastify()
  registerJourneyPage(admin, { recent: journey.recent, maxBufferedBytes: 64 * 1024 })
  adminBase = await listenLocal(admin)
})
after(async () => {
  stalled?.destroy()
  live?.body.destroy()
  await admin.close()
  await app.close()
  journey.close()
})

/** Resolves as `p` does, or fails saying `what` after `ms`. */
async function within (p: Promise<unknown>, what: string, ms = 3000): Promise<void> {
  await Promise.race([p, new Promise((_resolve, reject) => setTimeout(() => reject(new Error(what)), ms))])
}

/** A page that asks for the event stream, then reads nothing more than Node's first buffer. */
function stalledPage (url: string): Socket {
  const page = connect(Number(new URL(url).port), '127.0.0.1')
  page.write('GET /journey/events HTTP/1.1\r\nHost: x\r\n\r\n')
  page.on('error', () => {})
  return page
}

test('a page that stops reading is closed; one that reads keeps its stream; no open page holds up closing', async () => {
  // A second admin app with no limit that could close its stalled page: it must still be able to close.
  const unlimited = Fastify()
  registerJourneyPage(unlimited, { recent: journey.recent, maxBufferedBytes: Infinity })
  const unlimitedBase = await listenLocal(unlimited)
  const held = stalledPage(unlimitedBase)
  const page = stalled = stalledPage(adminBase)
  const stalledClosed = new Promise<void>(resolve => page.once('close', () => resolve()))
  // The reading page.
  const reading = live = await request(`${adminBase}/journey/events`)
  let liveBytes = 0
  reading.body.on('data', (chunk: Buffer) => { liveBytes += chunk.length })

  // Requests with 2,000-character paths: every row of every frame carries its path. Until the server has
  // closed the stalled page: seen from the server's side, as its admin connections dropping to the live one.
  const pool = new Pool(base, { connections: 4 })
  const connections = async (): Promise<number> => await new Promise(resolve => admin.server.getConnections((_e, n) => resolve(n)))
  for (let waited = 0; await connections() < 2 && waited < 2000; waited += 20) await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(await connections(), 2, 'both pages are connected')
  const started = Date.now()
  while (await connections() > 1 && Date.now() - started < 30_000) {
    await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      const r = await pool.request({ method: 'GET', path: `/item/${String(i).padStart(2000, 'x')}` })
      await r.body.dump()
    }))
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  await pool.close()
  assert.equal(await connections(), 1, 'the stalled page was closed by the server')
  // Reading again, the stalled page gets what was already on its way, then the end of its stream.
  page.resume()
  page.on('data', () => {})
  await within(stalledClosed, 'the stalled page never ended', 5000)
  const before = liveBytes
  await new Promise(resolve => setTimeout(resolve, 1500))
  assert.ok(liveBytes > before, 'the reading page still gets a frame a second')
  // Closing an app with a live page open: a page that reads sees its stream end, one that stopped reading
  // is cut; neither is waited for.
  await within(unlimited.close(), 'closing waited for the stalled page')
  held.destroy()
  const ended = new Promise(resolve => reading.body.once('end', resolve))
  await within(admin.close(), 'closing waited for the reading page')
  await within(ended, 'the reading page\'s stream did not end')
})
