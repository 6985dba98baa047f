// What a route costs in Prometheus: the series it adds to every scrape. docs/stages.md ("Series per route")
// gives these figures so operators can size a service's metrics before they deploy it; this test holds them,
// so a bucket or label added anywhere changes the docs too. Built with the public API, over a real socket.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { Client } from 'undici'
import { createJourney } from '../../src/journey/index.ts'

const registry = new Registry()
let app: FastifyInstance
let client: Client

before(async () => {
  const journey = createJourney({ registry })
  app = Fastify()
  await app.register(journey.plugin)
  app.get('/a', async (req, reply) => {
    const q = req.query as { created?: string, fail?: string }
    if (q.fail !== undefined) throw new Error('failed on purpose')
    return q.created === undefined ? { ok: true } : reply.code(201).send({ ok: true })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  client = new Client(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
})
after(async () => { await client.close(); await app.close() })

/** Series of route `/a` in one scrape, by metric family (the sample name less _bucket, _sum, _count). */
async function seriesOfA (): Promise<Record<string, number>> {
  const families: Record<string, number> = {}
  for (const line of (await registry.metrics()).split('\n')) {
    if (line.startsWith('#') || !/[{,](route|http_route)="\/a"/.test(line)) continue
    const family = line.slice(0, line.indexOf('{')).replace(/_(bucket|sum|count)$/, '')
    families[family] = (families[family] ?? 0) + 1
  }
  return families
}
const total = (families: Record<string, number>): number => Object.values(families).reduce((a, b) => a + b, 0)

async function get (path: string): Promise<number> {
  const r = await client.request({ method: 'GET', path })
  await r.body.dump()
  return r.statusCode
}

test('a GET route over keep-alive HTTP answering one status: 297 series; each further status code: 26; a first error: 26 + 27 for its error_handler gap', async () => {
  assert.equal(await get('/a'), 200) // a connection's first request: accept, and the client's wait before it
  assert.equal(await get('/a'), 200)
  const one = await seriesOfA()
  assert.deepEqual(one, {
    journey_stage_duration_seconds: 7 * 27, // accept, read, parse, decode, handler, serialize, write: 25 buckets, _sum, _count
    journey_gap_duration_seconds: 2 * 27, // hooks, before_request
    http_server_request_duration_seconds: 26, // per status code, scheme and protocol version: 24 buckets, _sum, _count
    http_server_request_body_size_bytes: 14,
    journey_response_written_bytes: 14
  })
  assert.equal(total(one), 297)

  assert.equal(await get('/a?created=1'), 201)
  const two = await seriesOfA()
  assert.equal(total(two) - total(one), 26, 'a second status code adds only its request-duration histogram')
  assert.equal(two.http_server_request_duration_seconds, 52)

  assert.equal(await get('/a?fail=1'), 500)
  const three = await seriesOfA()
  assert.equal(three.journey_gap_duration_seconds! - two.journey_gap_duration_seconds!, 27, 'the error_handler gap')
  assert.equal(total(three) - total(two), 26 + 27)
})
