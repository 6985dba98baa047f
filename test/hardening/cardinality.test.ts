// 10,000 requests to distinct random URLs with assorted methods: the number of series stays bounded.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Pool, request } from 'undici'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ OTEL_TRACES_SAMPLER: 'always_off' }) })
after(async () => { await t.close() })

/** Series of the journey's own metrics (runtime metrics such as GC kinds come and go on their own). */
async function journeySeries (): Promise<number> {
  const text = await (await request(`${t.admin}/metrics`)).body.text()
  return text.split('\n').filter(l => /^(journey_|http_server_)/.test(l)).length
}

test('unmatched routes and methods collapse into bounded label values', async () => {
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']
  const pool = new Pool(t.http, { connections: 8, pipelining: 4 })
  async function burst (from: number, n: number): Promise<void> {
    const jobs: Array<Promise<unknown>> = []
    for (let i = from; i < from + n; i++) {
      jobs.push(pool.request({ method: methods[i % methods.length]!, path: `/x/${i}/${Math.random().toString(36).slice(2)}?q=${i}` }).then(r => r.body.dump()))
    }
    await Promise.all(jobs)
  }
  await burst(0, 5_000)
  const half = await journeySeries()
  await burst(5_000, 5_000)
  // Counted before the pool closes its connections: closing them may add a `by` value of the closed counter
  // (bounded, and no URL's doing).
  const full = await journeySeries()
  await pool.close()
  const text = await (await request(`${t.admin}/metrics`)).body.text()
  assert.doesNotMatch(text, /\/x\//, 'no raw path in any label')
  assert.match(text, /route="\(unmatched\)"/)
  assert.equal(full, half, `5,000 more distinct URLs added ${full - half} series`)
  assert.ok(full < 2_000, `${full} journey series in all`)
})
