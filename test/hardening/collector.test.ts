// A collector that is black-holed, failing or rate-limiting: serving is unaffected, memory is bounded by
// the export queue, lost spans are counted, and the log warns at most once a minute.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { Pool, request } from 'undici'
import { killAll, start } from '../helpers/process.ts'
import { startSpanReceiver } from '../../experiments/lib/span-receiver.ts'

after(killAll)

async function collector (behaviour: 'blackhole' | 500 | 429): Promise<{ url: string, server: Server }> {
  const server = createServer((req, res) => {
    req.resume()
    if (behaviour === 'blackhole') return // accepts, never answers
    req.on('end', () => res.writeHead(behaviour, { 'retry-after': '1' }).end())
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

function metric (text: string, line: RegExp): number {
  return Number(line.exec(text)?.[1] ?? NaN)
}

describe('a misbehaving collector', () => {
  for (const [behaviour, thread] of [['blackhole', 'main'], [500, 'main'], [429, 'main'], ['blackhole', 'worker'], [500, 'worker'], [429, 'worker']] as const) {
    test(`${behaviour}, sent from the ${thread} thread: every request succeeds, every lost span is counted`, async (t) => {
      const c = await collector(behaviour)
      // Closed even when an assertion fails: an open server would keep this test file running.
      t.after(() => { c.server.closeAllConnections(); c.server.close() })
      const s = await start({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: c.url,
        OTEL_EXPORTER_OTLP_TIMEOUT: '500',
        OTEL_BSP_MAX_QUEUE_SIZE: '200',
        OTEL_BSP_SCHEDULE_DELAY: '50',
        OTEL_BSP_EXPORT_TIMEOUT: '500',
        JOURNEY_EXPORT_THREAD: thread
      })
      const pool = new Pool(`http://127.0.0.1:${s.ports.http}`, { connections: 4 })
      // Eight at a time, so the spans come far faster than a stuck exporter frees room (200 spans per
      // 500 ms timeout, ≈ 57 requests a second): one request after another, a CI run in a slow phase of
      // the VM dropped none.
      let ok = 0
      for (let i = 0; i < 400; i += 8) {
        await Promise.all(Array.from({ length: 8 }, async () => {
          const r = await pool.request({ method: 'GET', path: '/' })
          await r.body.dump()
          if (r.statusCode === 200) ok++
        }))
      }
      await pool.close()
      assert.equal(ok, 400, 'no request failed')
      // Wait for the first failed export: one that fails only during the shutdown flush is not logged
      // (the flush's own error ends with the process), and the worker thread may still be starting.
      let text = ''
      for (const t0 = performance.now(); performance.now() - t0 < 10_000;) {
        text = await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text()
        if (metric(text, /^journey_spans_exported_total\{result="failure"\} (\d+)/m) > 0) break
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      const dropped = metric(text, /^journey_spans_dropped_total (\d+)/m)
      const pending = metric(text, /^journey_spans_pending (\d+)/m)
      const failed = metric(text, /^journey_spans_exported_total\{result="failure"\} (\d+)/m)
      const delivered = metric(text, /^journey_spans_exported_total\{result="success"\} (\d+)/m)
      assert.ok(!(delivered > 0), `no span counted as delivered (${delivered})`)
      if (behaviour === 500) {
        // Answered at once: the queue drains as fast as it fills, so spans are lost as failed exports, not drops.
        assert.ok(failed + dropped > 0, `lost spans counted: failed ${failed}, dropped ${dropped}`)
      } else {
        assert.ok(dropped > 0, `dropped ${dropped}: 400 requests × 7 spans cannot fit a 200-span queue while exports hang or back off`)
      }
      assert.ok(pending <= 200, `pending ${pending} stays within the queue`)
      s.child.kill('SIGTERM')
      assert.equal((await s.exited).code, 0, 'exits cleanly even with the collector stuck')
      const warnings = s.logs().split('\n').filter(l => l.includes('telemetry export failed'))
      assert.equal(warnings.length, 1, `one warning for the first failure, the rest suppressed for a minute; got ${warnings.length}`)
    })
  }
})

// The other side: a collector that answers at once must get every span, even when every request is
// sampled and the server is saturated by many connections. The BatchSpanProcessor alone ships one batch per
// round trip, and the journey makes ≈ 7 spans per request: with it alone (JOURNEY_EXPORT_CONCURRENCY=1)
// this test loses spans even with the 8192-span queue (measured: 83k of 140k with one batch in flight, 40k
// with two; TEST_EXPORT_CONCURRENCY sets JOURNEY_EXPORT_CONCURRENCY to show it); the default is 8.
describe('a healthy collector under load, 100 % sampled, default queue sizes', () => {
  test('receives every span: none dropped, every request traced in full', async (t) => {
    const receiver = await startSpanReceiver()
    t.after(() => receiver.close())
    const s = await start({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // JSON, because that is what the receiver reads; it costs the exporter more than protobuf, which makes this harder.
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      ...(process.env.TEST_EXPORT_CONCURRENCY === undefined ? {} : { JOURNEY_EXPORT_CONCURRENCY: process.env.TEST_EXPORT_CONCURRENCY })
    })
    const requests = 20_000
    const pool = new Pool(`http://127.0.0.1:${s.ports.http}`, { connections: 200, pipelining: 1 })
    let sent = 0
    let ok = 0
    await Promise.all(Array.from({ length: 200 }, async () => {
      while (sent < requests) {
        sent++
        const r = await pool.request({ method: 'GET', path: '/' })
        await r.body.dump()
        if (r.statusCode === 200) ok++
      }
    }))
    await pool.close()
    assert.equal(ok, requests)
    let text = ''
    for (const t0 = performance.now(); performance.now() - t0 < 15_000;) {
      text = await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text()
      if (metric(text, /^journey_spans_pending (\d+)/m) === 0) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    const dropped = metric(text, /^journey_spans_dropped_total (\d+)/m)
    assert.equal(dropped, 0, `no span dropped (dropped ${dropped})`)
    const spans = receiver.all()
    const roots = spans.filter(sp => sp.name === 'GET /' && sp.kind === 2)
    assert.equal(roots.length, requests, 'one request span per request')
    const perTrace = new Map<string, number>()
    for (const sp of spans) perTrace.set(sp.traceId, (perTrace.get(sp.traceId) ?? 0) + 1)
    const partial = roots.filter(r => (perTrace.get(r.traceId) ?? 0) < 7).length
    assert.equal(partial, 0, `every request's trace has its request span and six stage spans (${partial} partial)`)
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
  })
})
