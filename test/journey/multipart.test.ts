// A body the handler reads itself: @fastify/multipart leaves an upload to the handler (request.file()), so
// a slow uploader's bytes arrive during the handler stage, not decode. The handler span says so.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http2 from 'node:http2'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import multipart from '@fastify/multipart'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import type { FastifyServerOptions } from 'fastify'
import { h2 } from '../helpers/h2.ts'
import { connect, responses } from '../helpers/raw.ts'
import { durationMs, roots, stage, waterfall } from '../helpers/spans.ts'
import { tracedJourney, type TracedJourney } from '../helpers/traced.ts'

/** The journey, @fastify/multipart and a route whose handler reads the upload itself, counting its bytes. */
async function uploadRoute (t: TracedJourney): Promise<void> {
    await t.app.register(t.journey.plugin)
    await t.app.register(multipart)
    t.app.post('/upload', async (request) => {
      const file = await request.file()
      let bytes = 0
      for await (const chunk of file!.file) bytes += (chunk as Buffer).length
      return { bytes }
    })
}

// 60 KB of one file, multipart/form-data with boundary XX.
const body = Buffer.concat([
  Buffer.from('--XX\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'),
  Buffer.alloc(60_000, 97),
  Buffer.from('\r\n--XX--\r\n')
])

test('an upload the handler reads itself arrives in the handler stage, and its span says the body was still arriving', async () => {
  const t = tracedJourney()
  try {
    await uploadRoute(t)
    t.app.post('/json', async (request) => request.body)
    const c = await connect(await t.listen())

    // 60 KB in three pieces, 60 ms apart, after the headers.
    await c.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: ${body.length}\r\n\r\n`)
    const third = Math.ceil(body.length / 3)
    for (let i = 0; i < 3; i++) {
      await sleep(60)
      await c.write(body.subarray(i * third, (i + 1) * third))
    }
    assert.match(await c.read(responses(1)), /\{"bytes":60000\}$/)
    const json = '{"a":1}'
    await c.write(`POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n${json}`)
    await c.read(responses(1))
    c.close()
    await sleep(30)

    const all = t.spans.getFinishedSpans()
    const upload = waterfall(all, roots(all, '/upload')[0]!)
    const handler = stage(upload, 'handler')!
    assert.equal(handler.attributes['journey.handler.body_arriving'], true)
    assert.ok(durationMs(handler) >= 100, `the upload's arrival is in the handler: ${durationMs(handler)} ms`)
    assert.ok(durationMs(stage(upload, 'decode')!) < 50, 'not in decode')
    const parsed = waterfall(all, roots(all, '/json')[0]!)
    assert.equal(stage(parsed, 'handler')!.attributes['journey.handler.body_arriving'], undefined, 'a body Fastify parsed had arrived before the handler')
  } finally {
    await t.close()
  }
})

test('a chunked upload the handler reads itself: counted without getting in its way', async () => {
  const t = tracedJourney()
  try {
    await uploadRoute(t)
    const c = await connect(await t.listen())
    await c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\n\r\n')
    const third = Math.ceil(body.length / 3)
    for (let i = 0; i < 3; i++) {
      await sleep(30)
      const piece = body.subarray(i * third, (i + 1) * third)
      await c.write(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]))
    }
    await c.write('0\r\n\r\n')
    assert.match(await c.read(responses(1)), /\{"bytes":60000\}$/)
    c.close()
    await sleep(30)
    const all = t.spans.getFinishedSpans()
    const upload = waterfall(all, roots(all, '/upload')[0]!)
    const decode = stage(upload, 'decode')!
    assert.equal(decode.attributes['http.request.body.size'], body.length)
    assert.equal(decode.attributes['journey.decode.decoded_bytes'], undefined, 'decode never saw the body: the handler read it')
  } finally {
    await t.close()
  }
})

test('a request without a body never says its body was arriving, on HTTP/1.1 or HTTP/2; an HTTP/2 upload does', async (t) => {
  // Fastify calls a GET's handler from Node's 'request' event, before the parser has seen the message end,
  // so the request is not yet `complete` there although no body was ever coming. (No multipart here: its
  // async onRequest hook would put the handler a tick later, when the request is complete.)
  const handlerOf = (traced: TracedJourney, path: string): ReadableSpan => {
    const all = traced.spans.getFinishedSpans()
    const root = roots(all, path)[0]
    assert.ok(root, `a trace for ${path}`)
    return stage(waterfall(all, root), 'handler')!
  }
  await t.test('HTTP/1.1', async () => {
    const traced = tracedJourney()
    try {
      await traced.app.register(traced.journey.plugin)
      traced.app.get('/get', async () => ({ ok: 1 }))
      traced.app.post('/empty', async () => ({ ok: 1 }))
      const c = await connect(await traced.listen())
      await c.write('GET /get HTTP/1.1\r\nHost: x\r\n\r\n')
      await c.read(responses(1))
      await c.write('POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
      await c.read(responses(1))
      c.close()
      await sleep(30)
      assert.equal(handlerOf(traced, '/get').attributes['journey.handler.body_arriving'], undefined, 'GET without a body')
      assert.equal(handlerOf(traced, '/empty').attributes['journey.handler.body_arriving'], undefined, 'Content-Length: 0')
    } finally {
      await traced.close()
    }
  })
  await t.test('HTTP/2', async () => {
    const h2Journey = (): TracedJourney => tracedJourney({ fastify: { http2: true } as FastifyServerOptions })
    const plain = h2Journey()
    const uploads = h2Journey()
    try {
      await plain.app.register(plain.journey.plugin)
      plain.app.get('/get', async () => ({ ok: 1 }))
      const session = http2.connect(`http://127.0.0.1:${await plain.listen()}`)
      try {
        assert.equal(await h2(session, '/get'), 200)
      } finally {
        session.close()
      }
      await uploadRoute(uploads)
      const upSession = http2.connect(`http://127.0.0.1:${await uploads.listen()}`)
      try {
        // The upload in three pieces, 40 ms apart, without content-length: the handler reads it as it comes.
        const stream = upSession.request({ ':path': '/upload', ':method': 'POST', 'content-type': 'multipart/form-data; boundary=XX' })
        stream.resume()
        const ended = once(stream, 'end')
        const third = Math.ceil(body.length / 3)
        for (let i = 0; i < 3; i++) {
          await sleep(40)
          stream.write(body.subarray(i * third, (i + 1) * third))
        }
        stream.end()
        await ended
      } finally {
        upSession.close()
      }
      await sleep(30)
      assert.equal(handlerOf(plain, '/get').attributes['journey.handler.body_arriving'], undefined, 'GET without a body')
      const upload = handlerOf(uploads, '/upload')
      assert.equal(upload.attributes['journey.handler.body_arriving'], true)
      assert.ok(durationMs(upload) >= 60, `the upload's arrival is in the handler: ${durationMs(upload)} ms`)
    } finally {
      await plain.close()
      await uploads.close()
    }
  })
})
