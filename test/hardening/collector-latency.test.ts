// A slow collector (answers after 2 s) against a healthy one: serving latency stays bounded, because
// spans are built after the response and exported off the request path, in batches.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { Pool } from 'undici'
import { killAll, start } from '../helpers/process.ts'

after(killAll)

async function collector (delayMs: number): Promise<{ url: string, server: Server }> {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => setTimeout(() => res.writeHead(200).end(), delayMs))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

async function p99With (delayMs: number): Promise<number> {
  const c = await collector(delayMs)
  const s = await start({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: c.url, OTEL_BSP_SCHEDULE_DELAY: '100', LOG_LEVEL: 'info' })
  const pool = new Pool(`http://127.0.0.1:${s.ports.http}`, { connections: 1 })
  const times: number[] = []
  for (let i = 0; i < 1200; i++) {
    const started = performance.now()
    const r = await pool.request({ method: 'GET', path: '/' })
    await r.body.dump()
    assert.equal(r.statusCode, 200)
    if (i >= 200) times.push(performance.now() - started) // the first 200 warm up
  }
  await pool.close()
  s.child.kill('SIGTERM')
  await s.exited
  c.server.closeAllConnections()
  c.server.close()
  times.sort((a, b) => a - b)
  return times[Math.floor(0.99 * (times.length - 1))]!
}

test('a collector that takes 2 s to answer does not slow the requests down', async (ctx) => {
  const healthy = await p99With(0)
  const slow = await p99With(2000)
  ctx.diagnostic(`p99 ${healthy.toFixed(2)} ms with a healthy collector, ${slow.toFixed(2)} ms with one answering after 2 s`)
  assert.ok(slow <= Math.max(3 * healthy, healthy + 25), `p99 ${slow} vs ${healthy}`)
})
