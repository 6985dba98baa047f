// 200 clients dribbling headers a byte at a time do not starve a normal client, and are cut off with 408.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, request } from 'undici'
import { connect, statusOf, type RawConnection } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ HEADERS_TIMEOUT_MS: '4000', OTEL_TRACES_SAMPLER: 'always_off', JOURNEY_SLOW_MS: '100000' }) })
after(async () => { await t.close() })

async function p99 (n: number): Promise<number> {
  const pool = new Pool(t.http, { connections: 1 })
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const started = performance.now()
    const r = await pool.request({ method: 'GET', path: '/' })
    await r.body.dump()
    times.push(performance.now() - started)
  }
  await pool.close()
  times.sort((a, b) => a - b)
  return times[Math.floor(0.99 * (times.length - 1))]!
}

test('a normal client\'s p99 stays bounded next to 200 slowloris clients, who get 408', async (ctx) => {
  await p99(100) // warm up
  const baseline = await p99(300)

  const slow: RawConnection[] = []
  for (let i = 0; i < 200; i++) slow.push(await connect(t.server.ports.http))
  const header = 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200)
  let at = 0
  const dribble = setInterval(() => {
    for (const c of slow) if (!c.socket.destroyed) c.socket.write(header[at % header.length]!)
    at++
  }, 20)
  await sleep(200)
  const loaded = await p99(300)
  const answers = await Promise.all(slow.map(c => c.read(undefined, 10_000)))
  clearInterval(dribble)

  ctx.diagnostic(`normal client p99: ${baseline.toFixed(2)} ms alone, ${loaded.toFixed(2)} ms next to 200 slow clients`)
  assert.ok(loaded <= Math.max(3 * baseline, baseline + 25), `p99 ${loaded.toFixed(2)} ms next to slow clients vs ${baseline.toFixed(2)} ms alone`)
  assert.equal(answers.filter(a => statusOf(a) === 408).length, 200, 'every slow client is cut off with 408')
  const text = await (await request(`${t.admin}/metrics`)).body.text()
  const timeouts = Number(/journey_connection_errors_total\{listener="http",reason="request_timeout"\} (\d+)/.exec(text)?.[1])
  assert.ok(timeouts >= 200, `counted ${timeouts}`)
})
