// Request body sizes: a body sent with Content-Length is that many bytes; one sent without is counted as it
// reaches JS — HTTP/1.1 chunked from Node's parser, chunk framing removed; an HTTP/2 stream's DATA — in the
// decode span's http.request.body.size and in http_server_request_body_size_bytes, like any other body.
import assert from 'node:assert/strict'
import { connect as connectH2, constants as h2constants } from 'node:http2'
import { gzipSync } from 'node:zlib'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyServerOptions } from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { createJourney } from '../../src/journey/index.ts'
import { listenLocal } from '../helpers/app.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { connect, responses, statusOf } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { roots, stage, waterfall } from '../helpers/spans.ts'

let t: TestServer
before(async () => { t = await startTestServer() })
after(async () => { await t.close() })
beforeEach(() => { t.exporter.reset() })

const port = (url: string): number => Number(new URL(url).port)

/** The echo route's body-size histogram: how many bodies, how many bytes. */
async function echoBodies (): Promise<{ count: number, bytes: number }> {
  const samples = parseMetrics(await (await request(`${t.admin}/metrics`)).body.text())
  const route = { http_route: '/echo', http_request_method: 'POST' }
  return { count: sum(samples, 'http_server_request_body_size_bytes_count', route), bytes: sum(samples, 'http_server_request_body_size_bytes_sum', route) }
}

/** A chunked request: each piece its own chunk, sent `gapMs` apart. */
function chunked (pieces: Buffer[], headers: string): { head: string, chunks: Buffer[] } {
  return {
    head: `POST /echo HTTP/1.1\r\nHost: x\r\n${headers}Transfer-Encoding: chunked\r\n\r\n`,
    chunks: [...pieces.map(p => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')])), Buffer.from('0\r\n\r\n')]
  }
}

test('a chunked body is counted as it arrives: the bytes without the chunk framing, in the span and the histogram', async () => {
  const body = Buffer.from(JSON.stringify({ message: 'y'.repeat(3000) }))
  const pieces = [body.subarray(0, 1000), body.subarray(1000, 2500), body.subarray(2500)]
  const before = await echoBodies()
  const c = await connect(port(t.http))
  const req = chunked(pieces, 'Content-Type: application/json\r\n')
  await c.write(req.head)
  for (const chunk of req.chunks) { await c.write(chunk); await sleep(20) }
  // A second request on the connection, with Content-Length: counted from its header, not added to the first.
  const small = '{"message":"z"}'
  await c.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${small.length}\r\n\r\n${small}`)
  const text = await c.read(responses(2))
  c.close()
  assert.equal(statusOf(text), 200, text.slice(0, 200))

  const spans = await t.spansWhere(s => roots(s, '/echo').length >= 2)
  const [first, second] = roots(spans, '/echo').map(r => waterfall(spans, r)).sort((a, b) => Number(a.root.attributes['journey.connection.request_index'] ?? 0) - Number(b.root.attributes['journey.connection.request_index'] ?? 0))
  const decode = stage(first!, 'decode')!
  assert.equal(decode.attributes['http.request.body.size'], body.length, 'the body, not its chunk framing')
  assert.equal(decode.attributes['journey.decode.decoded_bytes'], body.length)
  assert.equal(stage(second!, 'decode')!.attributes['http.request.body.size'], small.length)

  const now = await echoBodies()
  assert.equal(now.count - before.count, 2)
  assert.equal(now.bytes - before.bytes, body.length + small.length)
})

test('a chunked gzip body: its size is the compressed bytes, decoded_bytes what they inflate to', async () => {
  const json = JSON.stringify({ message: 'x'.repeat(50_000) })
  const gz = gzipSync(json)
  const c = await connect(port(t.http))
  const req = chunked([gz.subarray(0, 40), gz.subarray(40)], 'Content-Type: application/json\r\nContent-Encoding: gzip\r\n')
  await c.write(Buffer.concat([Buffer.from(req.head), ...req.chunks]))
  const text = await c.read(responses(1))
  c.close()
  assert.equal(statusOf(text), 200, text.slice(0, 200))
  const spans = await t.spansWhere(s => roots(s, '/echo').length >= 1)
  const decode = stage(waterfall(spans, roots(spans, '/echo')[0]!), 'decode')!
  assert.equal(decode.attributes['http.request.body.size'], gz.length)
  assert.equal(decode.attributes['journey.decode.decoded_bytes'], json.length)
})

test('a chunked body past the limit: 413, and only the bytes that arrived before the request ended are counted', async () => {
  const before = await echoBodies()
  const c = await connect(port(t.http))
  const req = chunked([Buffer.alloc(600_000, 0x20), Buffer.alloc(600_000, 0x20)], 'Content-Type: application/json\r\n')
  await c.write(Buffer.concat([Buffer.from(req.head), ...req.chunks]))
  const text = await c.read(responses(1))
  c.close()
  assert.equal(statusOf(text), 413)
  const now = await echoBodies()
  assert.equal(now.count - before.count, 1)
  const counted = now.bytes - before.bytes
  assert.ok(counted > 1_048_576 && counted <= 1_200_000, `counted ${counted} bytes: past the 1 MiB limit, no more than were sent`)
})

test('a Content-Length body answered before it arrived (413 on the header) has no size: the header is a claim, not bytes', async () => {
  const before = await echoBodies()
  const c = await connect(port(t.http))
  await c.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{}')
  const text = await c.read(responses(1))
  c.close()
  assert.equal(statusOf(text), 413)
  const spans = await t.spansWhere(s => roots(s, '/echo').length >= 1)
  const journey = waterfall(spans, roots(spans, '/echo')[0]!)
  for (const span of [journey.root, ...journey.stages]) assert.equal(span.attributes['http.request.body.size'], undefined, span.name)
  assert.deepEqual(await echoBodies(), before, 'not 99,999,999,999 bytes in the histogram')
})

test('an upload cut off mid-body has no size either; a chunked one counts what came', async () => {
  const before = await echoBodies()
  const c = await connect(port(t.http))
  await c.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"message":"${'a'.repeat(1000)}`)
  await sleep(50)
  c.close()
  const spans = await t.spansWhere(s => roots(s, '/echo').some(r => r.attributes['journey.aborted'] === true))
  const journey = waterfall(spans, roots(spans, '/echo').find(r => r.attributes['journey.aborted'] === true)!)
  for (const span of [journey.root, ...journey.stages]) assert.equal(span.attributes['http.request.body.size'], undefined, span.name)
  assert.deepEqual(await echoBodies(), before)

  const chunkedUpload = await connect(port(t.http))
  const req = chunked([Buffer.from(`{"message":"${'b'.repeat(1000)}`), Buffer.from('never sent')], 'Content-Type: application/json\r\n')
  await chunkedUpload.write(Buffer.concat([Buffer.from(req.head), req.chunks[0]!]))
  await sleep(50)
  chunkedUpload.close()
  await t.spansWhere(s => roots(s, '/echo').filter(r => r.attributes['journey.aborted'] === true).length >= 2)
  const now = await echoBodies()
  assert.deepEqual({ count: now.count - before.count, bytes: now.bytes - before.bytes }, { count: 1, bytes: 1012 })
})

test('HTTP/2: a body is counted as its DATA arrives, with or without content-length (one cut off counts what came); a GET is none', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ http2: true } as FastifyServerOptions)
  await app.register(journey.plugin)
  app.post('/echo', async (req) => req.body)
  app.get('/', async () => ({ ok: true }))
  const session = connectH2(await listenLocal(app))
  const send = (headers: Record<string, string>, pieces: string[]): Promise<number> => new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: pieces.length === 0 })
    let status = 0
    stream.on('response', h => { status = Number(h[':status']) })
    stream.on('error', reject)
    stream.on('end', () => resolve(status))
    stream.resume()
    if (pieces.length === 0) return
    // Node's client sends no content-length unless given one; the pieces go as separate DATA frames.
    void (async () => {
      for (const p of pieces.slice(0, -1)) { stream.write(p); await sleep(20) }
      stream.end(pieces.at(-1))
    })()
  })
  try {
    const json = JSON.stringify({ message: 'h'.repeat(70_000) })
    const post = { ':method': 'POST', ':path': '/echo', 'content-type': 'application/json' }
    assert.equal(await send(post, [json.slice(0, 1000), json.slice(1000)]), 200)
    const small = '{"message":"s"}'
    assert.equal(await send({ ...post, 'content-length': String(small.length) }, [small]), 200)
    assert.equal(await send({ ':method': 'GET', ':path': '/' }, []), 200)
    await sleep(30)
    const samples = parseMetrics(await registry.metrics())
    assert.equal(sum(samples, 'http_server_request_body_size_bytes_count', { http_route: '/echo' }), 2)
    assert.equal(sum(samples, 'http_server_request_body_size_bytes_sum', { http_route: '/echo' }), json.length + small.length)
    assert.equal(sum(samples, 'http_server_request_body_size_bytes_count', { http_route: '/' }), 0, 'a request without a body has no size')

    // A stream cut off mid-body counts the DATA that came, not the content-length it announced.
    const cut = session.request({ ...post, 'content-length': '100000' })
    cut.on('error', () => {})
    cut.write('x'.repeat(1000))
    await sleep(50)
    cut.close(h2constants.NGHTTP2_CANCEL)
    let after = parseMetrics(await registry.metrics())
    for (let i = 0; i < 100 && sum(after, 'http_server_request_body_size_bytes_count', { http_route: '/echo' }) < 3; i++) {
      await sleep(20)
      after = parseMetrics(await registry.metrics())
    }
    assert.equal(sum(after, 'http_server_request_body_size_bytes_count', { http_route: '/echo' }), 3)
    assert.equal(sum(after, 'http_server_request_body_size_bytes_sum', { http_route: '/echo' }), json.length + small.length + 1000)
  } finally {
    session.close()
    await app.close()
    journey.close()
  }
})
