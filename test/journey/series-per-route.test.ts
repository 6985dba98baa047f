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

test('buckets: fewer bounds carry fewer series per route (74 instead of 297), and each observation lands under the bounds given', async () => {
  const own = new Registry()
  const journey = createJourney({ registry: own, buckets: { stages: [0.001, 0.01, 0.1, 1], requests: [], sizes: [1024] }, ignoreRoutes: ['/metrics'] })
  const app2 = Fastify()
  await app2.register(journey.plugin)
  app2.get('/b', async () => { await new Promise(resolve => setTimeout(resolve, 20)); return { ok: true } })
  app2.get('/metrics', async (_req, reply) => reply.type(own.contentType).send(await own.metrics()))
  await app2.listen({ port: 0, host: '127.0.0.1' })
  const c = new Client(`http://127.0.0.1:${(app2.server.address() as { port: number }).port}`)
  try {
    for (let i = 0; i < 2; i++) {
      const r = await c.request({ method: 'GET', path: '/b' })
      await r.body.dump()
      assert.equal(r.statusCode, 200)
    }
    const scrape = await c.request({ method: 'GET', path: '/metrics' })
    const lines = (await scrape.body.text()).split('\n').filter(l => !l.startsWith('#') && /[{,](route|http_route)="\/b"/.test(l))
    const families: Record<string, number> = {}
    for (const line of lines) {
      const family = line.slice(0, line.indexOf('{')).replace(/_(bucket|sum|count)$/, '')
      families[family] = (families[family] ?? 0) + 1
    }
    assert.deepEqual(families, {
      journey_stage_duration_seconds: 7 * 7, // 4 bounds, +Inf, _sum, _count
      journey_gap_duration_seconds: 2 * 7,
      http_server_request_duration_seconds: 3, // no bounds: +Inf, _sum, _count
      http_server_request_body_size_bytes: 4, // one bound, +Inf, _sum, _count
      journey_response_written_bytes: 4
    })
    const value = (prefix: string): number => {
      const line = lines.find(l => l.startsWith(prefix))
      assert.ok(line !== undefined, `no sample ${prefix}…`)
      return Number(line.slice(line.lastIndexOf(' ') + 1))
    }
    // Each 20 ms handler: above 0.01 s, within 0.1 s.
    assert.equal(value('journey_stage_duration_seconds_bucket{le="0.01",stage="handler"'), 0)
    assert.equal(value('journey_stage_duration_seconds_bucket{le="0.1",stage="handler"'), 2)
    assert.equal(value('journey_stage_duration_seconds_bucket{le="+Inf",stage="handler"'), 2)
    assert.equal(value('http_server_request_duration_seconds_bucket{le="+Inf"'), 2)
    assert.equal(value('http_server_request_duration_seconds_count{'), 2)
    assert.ok(value('http_server_request_duration_seconds_sum{') >= 0.04, 'two requests of at least 20 ms each')
    // Each response (status line, headers, {"ok":true}) is well under 1 KiB.
    assert.equal(value('journey_response_written_bytes_bucket{le="1024"'), 2)
  } finally {
    await c.close()
    await app2.close()
    journey.close()
  }
})

test('buckets that would miscount or repeat a series are refused at createJourney, before any metric is registered', () => {
  const own = new Registry()
  const refused: Array<[unknown, RegExp]> = [
    [[0.1, 0.01], /buckets\.stages must be strictly ascending: 0\.1 then 0\.01/],
    [[0.01, 0.01], /strictly ascending: 0\.01 then 0\.01/], // one `le` twice: a duplicate series
    [[0.01, Infinity], /buckets\.stages\[1\] is Infinity: .*\+Inf is always added/],
    [[Number.NaN], /buckets\.stages\[0\] is NaN/],
    [['0.1'], /buckets\.stages\[0\] is "0\.1": bounds are finite numbers/], // a string, said as one
    [0.1, /buckets\.stages must be an array/]
  ]
  for (const [stages, message] of refused) {
    assert.throws(() => createJourney({ registry: own, buckets: { stages: stages as number[] } }), { name: 'TypeError', message })
    assert.equal(own.getMetricsAsArray().length, 0, 'nothing registered: a corrected call can follow')
  }
  assert.throws(() => createJourney({ registry: own, buckets: { requests: [1, 0.5] } }), /buckets\.requests must be strictly ascending/)
  assert.throws(() => createJourney({ registry: own, buckets: { sizes: [0, 0] } }), /buckets\.sizes must be strictly ascending/)
  const journey = createJourney({ registry: own, buckets: { stages: [], requests: [0.5], sizes: [0] } })
  journey.close()
})
