// Every demo route and every limit, over real HTTP and HTTPS connections.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { brotliCompressSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib'
import { request } from 'undici'
import { encodeOrder } from '../src/app/orders.ts'
import { connect, statusOf } from './helpers/raw.ts'
import { scrape, sum } from '../experiments/lib/metrics.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ BODY_LIMIT_BYTES: '65536', COMPUTE_MAX_MS: '200', IO_MAX_MS: '300', DOWNLOAD_MAX_KB: '512', MAX_HEADER_SIZE: '4096' }) })
after(async () => { await t.close() })

async function call (base: string, path: string, init: { method?: string, headers?: Record<string, string>, body?: string | Buffer | Uint8Array } = {}) {
  const res = await request(base + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body, dispatcher: t.insecure })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
}

const order = { id: 'o-1', customer: 'ada', currency: 'EUR', items: [{ sku: 'a', quantity: 2, unitPriceCents: 150 }, { sku: 'b', quantity: 1, unitPriceCents: 1000 }] }
const json = { 'content-type': 'application/json' }

for (const scheme of ['http', 'https'] as const) {
  describe(`demo routes over ${scheme}`, () => {
    const base = (): string => scheme === 'http' ? t.http : t.https

    test('GET /account: an auth hook waits auth_ms, then 401 without credentials, 200 with; its time is the hooks gap, not the handler', async () => {
      const before = await scrape(`${t.admin}/metrics`)
      assert.equal((await call(base(), '/account?auth_ms=20')).status, 401)
      const ok = await call(base(), '/account?auth_ms=20', { headers: { authorization: 'Bearer x' } })
      assert.equal(ok.status, 200)
      assert.deepEqual(ok.json(), { account: 'demo' })
      for (const bad of ['abc', '-1', '301', '1.5']) assert.equal((await call(base(), `/account?auth_ms=${bad}`)).status, 400, bad)
      // A record is published when its response's last byte is handed to the kernel, which the server
      // may get to only after the client has read it: wait for all six.
      let after = await scrape(`${t.admin}/metrics`)
      const grew = (name: string, labels: Record<string, string>): number => sum(after, name, labels) - sum(before, name, labels)
      const scheme = { http_route: '/account', url_scheme: base().slice(0, base().indexOf(':')) }
      for (let i = 0; grew('http_server_request_duration_seconds_count', scheme) < 6; i++) {
        assert.ok(i < 100, 'six requests counted')
        await new Promise(resolve => setTimeout(resolve, 20))
        after = await scrape(`${t.admin}/metrics`)
      }
      const route = { route: '/account' }
      assert.ok(grew('journey_gap_duration_seconds_sum', { ...route, gap: 'hooks' }) >= 0.038, 'two 20 ms waits in the hook (a timer may fire up to 1 ms early: libuv\'s loop time is cached)')
      assert.equal(grew('journey_stage_duration_seconds_count', { ...route, stage: 'handler' }), 1, 'only the request with credentials reached the handler')
      assert.ok(grew('journey_stage_duration_seconds_sum', { ...route, stage: 'handler' }) < 0.01)
    })

    test('GET / answers tiny JSON', async () => {
      const r = await call(base(), '/')
      assert.equal(r.status, 200)
      assert.deepEqual(r.json(), { hello: 'journey' })
    })

    test('POST /echo echoes a valid body, plain and in every accepted encoding', async () => {
      const body = JSON.stringify({ message: 'hi', items: [1, 2, 3] })
      for (const [encoding, bytes] of [
        ['identity', Buffer.from(body)], ['gzip', gzipSync(body)], ['deflate', deflateSync(body)], ['br', brotliCompressSync(body)]
      ] as const) {
        const headers: Record<string, string> = { ...json }
        if (encoding !== 'identity') headers['content-encoding'] = encoding
        const r = await call(base(), '/echo', { method: 'POST', headers, body: bytes })
        assert.equal(r.status, 200, `${encoding}: ${r.text}`)
        assert.deepEqual(r.json(), JSON.parse(body))
      }
    })

    test('POST /echo rejects bad bodies with the right status', async () => {
      const cases: Array<[string, Record<string, string>, string | Buffer, number]> = [
        ['invalid JSON', json, '{"message":', 400],
        ['schema violation', json, JSON.stringify({ nope: 1 }), 400],
        ['wrong content type', { 'content-type': 'text/plain' }, 'hello', 415],
        ['unsupported encoding', { ...json, 'content-encoding': 'compress' }, 'xx', 415],
        ['corrupt gzip', { ...json, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all'), 400],
        ['body over the limit', json, JSON.stringify({ message: 'x'.repeat(70_000) }), 413],
        // 64 KiB limit; this inflates to 10 MiB: rejected once the decoded bytes pass the limit.
        ['decompression bomb', { ...json, 'content-encoding': 'gzip' }, gzipSync(Buffer.alloc(10 * 1024 * 1024, 32)), 413]
      ]
      for (const [name, headers, body, status] of cases) {
        const r = await call(base(), '/echo', { method: 'POST', headers, body })
        assert.equal(r.status, status, `${name}: ${r.text}`)
        assert.equal(r.json().statusCode, status, name)
      }
      const r = await call(base(), '/echo', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '{}' })
      assert.match(r.json().message, /content-type: application\/json/, 'the 415 says what to send')
    })

    test('POST /orders decodes protobuf and JSON into the same summary', async () => {
      const expected = { id: 'o-1', customer: 'ada', itemCount: 3, totalCents: 1300, currency: 'EUR' }
      const pb = await call(base(), '/orders', { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: encodeOrder(order) })
      assert.equal(pb.status, 200, pb.text)
      assert.deepEqual(pb.json(), expected)
      const js = await call(base(), '/orders', { method: 'POST', headers: json, body: JSON.stringify(order) })
      assert.deepEqual(js.json(), expected)
      const gz = await call(base(), '/orders', { method: 'POST', headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' }, body: gzipSync(encodeOrder(order)) })
      assert.deepEqual(gz.json(), expected)
    })

    test('POST /orders rejects invalid protobuf and invalid orders with 400', async () => {
      const garbage = await call(base(), '/orders', { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]) })
      assert.equal(garbage.status, 400, garbage.text)
      const empty = await call(base(), '/orders', { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.alloc(0) })
      assert.equal(empty.status, 400, 'an empty message has no id: schema says 400')
      const bad = await call(base(), '/orders', { method: 'POST', headers: json, body: JSON.stringify({ ...order, currency: 'euro' }) })
      assert.equal(bad.status, 400)
    })

    test('GET /compute burns CPU on the loop or on a worker, within the limit', async () => {
      const loop = await call(base(), '/compute?ms=20')
      assert.equal(loop.status, 200)
      assert.equal(loop.json().offload, false)
      assert.ok(loop.json().iterations > 0)
      const worker = await call(base(), '/compute?ms=20&offload=1')
      assert.equal(worker.json().offload, true)
      assert.ok(worker.json().iterations > 0)
      for (const q of ['ms=201', 'ms=-1', 'ms=abc', '', 'ms=5&offload=maybe']) {
        assert.equal((await call(base(), `/compute?${q}`)).status, 400, q)
      }
    })

    test('GET /io waits asynchronously, within the limit', async () => {
      const started = performance.now()
      const r = await call(base(), '/io?ms=50')
      assert.equal(r.status, 200)
      assert.ok(performance.now() - started >= 49)
      assert.equal((await call(base(), '/io?ms=301')).status, 400)
    })

    test('GET /download streams exactly kb KiB, within the limit', async () => {
      const r = await call(base(), '/download?kb=100')
      assert.equal(r.status, 200)
      assert.equal(r.text.length, 100 * 1024)
      assert.equal(r.headers['content-length'], String(100 * 1024))
      assert.equal((await call(base(), '/download?kb=0')).text.length, 0)
      assert.equal((await call(base(), '/download?kb=513')).status, 400)
    })

    test('GET /report: the same rows from the compiled response schema and from JSON.stringify; serialize is the stage that grows with it', async () => {
      const bySchema = await call(base(), '/report?items=3')
      const byJson = await call(base(), '/report?items=3&serializer=json')
      for (const r of [bySchema, byJson]) {
        assert.equal(r.status, 200)
        assert.match(String(r.headers['content-type']), /^application\/json/)
      }
      assert.deepEqual(bySchema.json(), byJson.json(), 'the same rows')
      assert.equal(bySchema.text.length, byJson.text.length, 'in the same bytes')
      // Each serializer's own property order (the schema's: id first; the rows': name first) says which ran.
      assert.match(bySchema.text, /^\{"count":3,"items":\[\{"id":0,"sku":/)
      assert.match(byJson.text, /^\{"count":3,"items":\[\{"name":"Item 0 of the journey catalogue","id":0,/)
      assert.equal(bySchema.json().count, 3)
      assert.deepEqual(bySchema.json().items[1], { id: 1, sku: 'SKU-000001', name: 'Item 1 of the journey catalogue', price: 1.37, inStock: true, tags: ['odd'] })
      for (const bad of ['', 'items=-1', 'items=100001', 'items=1.5', 'items=2&serializer=xml']) assert.equal((await call(base(), `/report?${bad}`)).status, 400, bad)

      // Mean serialize time per request, small responses against large ones: the large ones' grows. Each
      // size is warmed first, and the small one averaged over more requests: a garbage collection that lands
      // in one 10-row request (1 ms or so; seen in CI) must not read as its serialization.
      const serialize = async (items: number, n: number): Promise<number> => {
        assert.equal((await call(base(), `/report?items=${items}`)).status, 200)
        const before = await scrape(`${t.admin}/metrics`)
        for (let i = 0; i < n; i++) assert.equal((await call(base(), `/report?items=${items}`)).status, 200)
        const stage = { route: '/report', stage: 'serialize' }
        const read = async (): Promise<number> => {
          const after = await scrape(`${t.admin}/metrics`)
          const count = sum(after, 'journey_stage_duration_seconds_count', stage) - sum(before, 'journey_stage_duration_seconds_count', stage)
          return count < n ? NaN : (sum(after, 'journey_stage_duration_seconds_sum', stage) - sum(before, 'journey_stage_duration_seconds_sum', stage)) / count
        }
        // A record is published when its last byte reaches the kernel, which may come after the client read it.
        for (let tries = 0; tries < 50; tries++) {
          const mean = await read()
          if (!Number.isNaN(mean)) return mean
          await new Promise(resolve => setTimeout(resolve, 20))
        }
        return NaN
      }
      const small = await serialize(10, 20)
      const large = await serialize(20_000, 3)
      assert.ok(large > small * 10, `20,000 rows ${large * 1000} ms against 10 rows ${small * 1000} ms`)
    })

    test('unknown routes are 404 JSON', async () => {
      const r = await call(base(), '/no/such/route')
      assert.equal(r.status, 404)
      assert.equal(r.json().statusCode, 404)
    })

    test('a header block over MAX_HEADER_SIZE gets 431, and the server keeps serving', async () => {
      const port = scheme === 'http' ? t.server.ports.http : t.server.ports.https
      const c = await connect(port, scheme === 'https')
      await c.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`)
      const text = await c.read()
      assert.equal(statusOf(text), 431, text)
      assert.equal((await call(base(), '/')).status, 200)
    })

    test('a malformed request line gets 400', async () => {
      const port = scheme === 'http' ? t.server.ports.http : t.server.ports.https
      const c = await connect(port, scheme === 'https')
      await c.write('GARBAGE\r\n\r\n')
      assert.equal(statusOf(await c.read()), 400)
    })

    test('keep-alive: several requests share one connection', async () => {
      const port = scheme === 'http' ? t.server.ports.http : t.server.ports.https
      const c = await connect(port, scheme === 'https')
      for (let i = 0; i < 3; i++) {
        await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
        const text = await c.read(s => s.endsWith('{"hello":"journey"}'))
        assert.equal(statusOf(text), 200)
        assert.match(text, /keep-alive/i)
      }
      c.close()
    })
  })
}

describe('admin listener', () => {
  test('serves /metrics (OpenMetrics when asked, else the text format), /healthz and /readyz', async () => {
    const m = await request(`${t.admin}/metrics`, { headers: { accept: 'application/openmetrics-text' } })
    assert.equal(m.statusCode, 200)
    assert.match(String(m.headers['content-type']), /application\/openmetrics-text/)
    assert.match(String((await request(`${t.admin}/metrics`)).headers['content-type']), /^text\/plain; version=0\.0\.4/)
    const text = await m.body.text()
    assert.match(text, /# TYPE journey_stage_duration_seconds histogram/)
    assert.match(text, /nodejs_eventloop_lag_seconds/)
    assert.equal((await request(`${t.admin}/healthz`)).statusCode, 200)
    const ready = await request(`${t.admin}/readyz`)
    assert.equal(ready.statusCode, 200)
    assert.deepEqual(await ready.body.json(), { status: 'ready' })
  })

  test('/metrics is gzipped for a scraper that asks (Prometheus always does), the same exposition', async () => {
    const plain = await (await request(`${t.admin}/metrics`)).body.text()
    const z = await request(`${t.admin}/metrics`, { headers: { 'accept-encoding': 'gzip' } })
    assert.equal(z.headers['content-encoding'], 'gzip')
    assert.match(String(z.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    const wire = Buffer.from(await z.body.arrayBuffer())
    const text = gunzipSync(wire).toString()
    // Two scrapes a moment apart: the same series, in the same order (values such as uptime move).
    const names = (x: string): string[] => x.split('\n').filter(l => l.startsWith('# TYPE'))
    assert.deepEqual(names(text), names(plain))
    assert.ok(wire.length < text.length / 5, `${wire.length} bytes on the wire for ${text.length}`)
    const page = await request(`${t.admin}/journey/events`, { headers: { 'accept-encoding': 'gzip' } })
    assert.equal(page.headers['content-type'], 'text/event-stream')
    assert.equal(page.headers['content-encoding'], undefined, 'the page\'s event stream is never held back by a compressor')
    await page.body.destroy()
  })

  test('its root lists what it serves: plain text for curl, links for a browser, each link answering', async () => {
    const plain = await request(`${t.admin}/`)
    assert.equal(plain.statusCode, 200)
    assert.match(String(plain.headers['content-type']), /^text\/plain/)
    const text = await plain.body.text()
    for (const path of ['/journey', '/metrics', '/healthz', '/readyz']) assert.match(text, new RegExp(`^${path} +\\S`, 'm'), path)
    assert.match(text, /^\/readyz +readiness: 503 while starting or draining$/m)
    const html = await request(`${t.admin}/`, { headers: { accept: 'text/html,application/xhtml+xml' } })
    assert.match(String(html.headers['content-type']), /^text\/html/)
    const links = [...(await html.body.text()).matchAll(/<a href="([^"]+)">/g)].map(m => m[1]!)
    assert.deepEqual(links.filter(l => !l.startsWith('/journey/')), ['/metrics', '/journey', '/healthz', '/readyz'])
    for (const link of links) {
      if (link === '/journey/events') continue // a stream that never ends
      const r = await request(`${t.admin}${link}`)
      assert.equal(r.statusCode, 200, link)
      await r.body.dump()
    }
  })

  test('nothing operational is on the public ports', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      assert.equal((await call(t.http, path)).status, 404, path)
      assert.equal((await call(t.https, path)).status, 404, path)
    }
  })

  test('listens on 127.0.0.1 by default', () => {
    const addr = t.server.admin!.server.address()
    assert.ok(addr !== null && typeof addr === 'object')
    assert.equal(addr.address, '127.0.0.1')
  })
})
