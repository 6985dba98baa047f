// A body the handler reads itself: @fastify/multipart leaves an upload to the handler (request.file()), so
// a slow uploader's bytes arrive during the handler stage, not decode. The handler span says so.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import multipart from '@fastify/multipart'
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
