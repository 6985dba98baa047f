// Response compression by @fastify/compress, registered before or after the journey: compressing runs in its
// onSend hook (a small body at once) or as the body is written (a large one, in a stream), after the
// journey's onSend either way, so it is in the write stage, and the write span says the encoding.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { gunzipSync } from 'node:zlib'
import compress from '@fastify/compress'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { renderRow } from '../../src/journey/page.ts'
import { connect } from '../helpers/raw.ts'
import { durationMs, nextWaterfall, roots, stage, waterfall } from '../helpers/spans.ts'

const rows = (n: number): string => JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: i, name: `row ${i}` })))
const SMALL = rows(100) // ≈ 2 KiB: over the default threshold (1 KiB), under the syncThreshold (≥ 4 KiB)
const LARGE = rows(20_000) // ≈ 500 KiB: streamed

for (const order of ['compress registered first', 'journey registered first'] as const) {
  test(`${order}: a compressed response's write span says its encoding and counts the compressed bytes`, async (t) => {
    const spans = new InMemorySpanExporter()
    const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })], finishedRequestSpans: true })
    const provider = new TracerProvider(tracing.sdkOptions)
    const journey = createJourney({ registry: new Registry(), tracing, tracer: provider.getTracer('request-journey'), recordHeaders: ['X-Request-Id'], recordResponseHeaders: ['Content-Length'] })
    const app = Fastify()
    t.after(async () => { await app.close(); journey.close(); await provider.shutdown() })
    if (order === 'compress registered first') await app.register(compress, { global: true })
    await app.register(journey.plugin)
    if (order === 'journey registered first') await app.register(compress, { global: true })
    app.get('/small', async (_req, reply) => reply.type('application/json').send(SMALL))
    app.get('/large', async (_req, reply) => reply.type('application/json').send(LARGE))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

    for (const [route, body, streamed] of [['/small', SMALL, false], ['/large', LARGE, true]] as const) {
      spans.reset()
      const r = await request(base + route, { headers: { 'accept-encoding': 'gzip', 'x-request-id': 'r-1' } })
      const wire = Buffer.from(await r.body.arrayBuffer())
      assert.equal(r.headers['content-encoding'], 'gzip', route)
      assert.equal(gunzipSync(wire).toString(), body)
      assert.equal(r.headers['content-length'] === undefined, streamed, `${route}: ${streamed ? 'streamed (chunked)' : 'compressed at once (its length known)'}`)
      let root
      for (let i = 0; i < 100 && root === undefined; i++) {
        root = roots(spans.getFinishedSpans(), route)[0]
        if (root === undefined) await sleep(10)
      }
      assert.ok(root !== undefined)
      const w = waterfall(spans.getFinishedSpans(), root)
      const write = w.stages.find(s => s.name === 'journey.write')!
      assert.equal(write.attributes['journey.write.content_encoding'], 'gzip', route)
      // The compressor made the large body a stream after the journey's onSend: whether its writes waited
      // for 'drain' is known (a fast reader: usually not); a body compressed at once has no such writes.
      assert.equal(typeof write.attributes['journey.write.backpressure'], streamed ? 'boolean' : 'undefined', route)
      const written = Number(write.attributes['journey.write.bytes'])
      assert.ok(written > wire.length && written < wire.length + 1024, `${route}: ${written} bytes written for ${wire.length} compressed (${body.length} before)`)
      const serialize = w.stages.find(s => s.name === 'journey.serialize')
      assert.equal(serialize?.attributes['journey.write.content_encoding'], undefined)
      assert.deepEqual(root.attributes['http.response.header.content-length'], streamed ? undefined : [String(wire.length)], 'the length of what went out, not of the JSON')
      // Header names given in any case are recorded under the lower-case keys the conventions use.
      assert.deepEqual(root.attributes['http.request.header.x-request-id'], ['r-1'])
    }
  })
}

test('a compressed stream to a client that stops reading: its wait is in write, with backpressure; the same body uncompressed has none to report', async (t) => {
  const spans = new InMemorySpanExporter()
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })], finishedRequestSpans: true })
  const provider = new TracerProvider(tracing.sdkOptions)
  const journey = createJourney({ registry: new Registry(), tracing, tracer: provider.getTracer('request-journey') })
  const recent = journey.recent // the journey page's view collects from its first use
  const app = Fastify()
  t.after(async () => { await app.close(); journey.close(); await provider.shutdown() })
  await app.register(journey.plugin)
  await app.register(compress, { global: true })
  // Random base64 compresses to ≈ 3/4 of itself: 6 MiB on the wire, more than the kernel's buffers hold for
  // a client that reads nothing.
  const NOISE = randomBytes(6 * 1024 * 1024).toString('base64')
  let noiseResponse: ServerResponse | undefined
  app.get('/noise', async (_req, reply) => {
    noiseResponse = reply.raw
    return reply.type('text/plain').send(NOISE)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  const c = await connect(port)
  c.socket.pause()
  await c.write('GET /noise HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n')
  // The premise: the server has more to send than the kernel holds for a reader that reads nothing. Gzip
  // makes those bytes on the CPU, so on a busy machine that can take longer than any fixed pause: wait until
  // the response is really held back, then keep the client away another 300 ms.
  for (const deadline = Date.now() + 20_000; noiseResponse?.writableNeedDrain !== true;) {
    assert.ok(Date.now() < deadline, 'the response was never held back by the paused client')
    await sleep(10)
  }
  await sleep(300)
  c.socket.resume()
  const text = await c.read(undefined, 20_000) // to the server's close
  assert.match(text, /^HTTP\/1\.1 200 [^]*content-encoding: gzip/i)
  const slow = stage(await nextWaterfall(spans, '/noise'), 'write')!
  assert.equal(slow.attributes['journey.write.content_encoding'], 'gzip')
  assert.equal(slow.attributes['journey.write.backpressure'], true)
  assert.ok(durationMs(slow) >= 250, `write ${durationMs(slow)} ms`)
  // The journey page says it where the long write segment is hovered.
  const [row] = recent.snapshot().recent
  assert.equal(row?.backpressure, true)
  assert.match(renderRow(row!), /data-stage="write"[^>]*title="write [\d.]+ ms, streamed: it waited for the client to read \(backpressure\)[^"]*"/)

  // Not compressed (no Accept-Encoding): one end() call, no stream, so nothing to say about 'drain'.
  spans.reset()
  const r = await request(`http://127.0.0.1:${port}/noise`)
  assert.equal((await r.body.text()).length, NOISE.length)
  const plain = stage(await nextWaterfall(spans, '/noise'), 'write')!
  assert.equal(plain.attributes['journey.write.content_encoding'], undefined)
  assert.equal(plain.attributes['journey.write.backpressure'], undefined)
  const [plainRow] = recent.snapshot().recent
  assert.equal(plainRow?.backpressure, undefined)
  assert.match(renderRow(plainRow!), /data-stage="write"[^>]*title="write [\d.]+ ms(; the kernel still held [^"]*)?"/)
})
