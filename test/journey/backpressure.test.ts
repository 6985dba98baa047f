// journey.write.backpressure says whether a streamed response's writes left bytes the kernel would not
// take: a client reading slowly, not chunks as large as a stream's high-water mark (64 KiB, a file's), after
// each of which Node emits 'drain' however fast the client reads. For a Node stream, and for bodies Fastify
// streams from the web streams API: a ReadableStream, or a fetch Response (a proxied upstream's,
// `reply.send(await fetch(url))`).
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { nextWaterfall, stage } from '../helpers/spans.ts'
import { tracedJourney } from '../helpers/traced.ts'
import { connect } from '../helpers/raw.ts'

const CHUNKS = 256 // of 64 KiB: 16 MiB, more than the kernel's buffers hold for a client not reading

/** `n` chunks of 64 KiB, then the end, or `fail`'s error. */
function webBody (n: number, fail?: Error): ReadableStream<Uint8Array> {
  let sent = 0
  return new ReadableStream({
    pull (c) {
      if (sent++ < n) c.enqueue(new Uint8Array(65536))
      else if (fail !== undefined) c.error(fail)
      else c.close()
    }
  })
}

test('a Node stream of 64 KiB chunks read by a fast client: no backpressure, though Node emitted \'drain\' after each', async () => {
  const t = tracedJourney()
  try {
    await t.app.register(t.journey.plugin)
    let drains = 0
    t.app.get('/file', async (_request, reply) => {
      let sent = 0
      reply.raw.on('drain', () => { drains++ })
      return reply.type('application/octet-stream').send(new Readable({ read () { this.push(sent++ < 8 ? Buffer.alloc(65536) : null) } }))
    })
    const port = await t.listen()
    const res = await fetch(`http://127.0.0.1:${port}/file`)
    assert.equal((await res.arrayBuffer()).byteLength, 8 * 65536)
    const w = await nextWaterfall(t.spans, '/file')
    assert.ok(drains > 0, 'Node\'s drain came all the same')
    assert.equal(stage(w, 'write')!.attributes['journey.write.backpressure'], false)
  } finally {
    await t.close()
  }
})

test('a web body: a slow reader\'s wait is in write, with backpressure; a fast one has none; one failing mid-body is the server\'s cut', async () => {
  const t = tracedJourney()
  try {
    await t.app.register(t.journey.plugin)
    t.app.get('/stream', async (request, reply) => reply.type('application/octet-stream').send(webBody(Number((request.query as { n: string }).n))))
    t.app.get('/response', async (_request, reply) => reply.send(new Response(webBody(2), { status: 201 })))
    t.app.get('/fails', async (_request, reply) => reply.type('application/octet-stream').send(webBody(2, new Error('upstream reset'))))
    const port = await t.listen()

    const slow = await connect(port)
    slow.socket.pause()
    await slow.write(`GET /stream?n=${CHUNKS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    await sleep(300)
    slow.socket.resume()
    await slow.read() // to the close
    const paused = await nextWaterfall(t.spans, '/stream')
    t.spans.reset()
    const write = stage(paused, 'write')!
    assert.equal(write.attributes['journey.write.backpressure'], true)
    assert.ok(Number(write.attributes['journey.write.bytes']) > CHUNKS * 65536, String(write.attributes['journey.write.bytes']))

    const fast = await fetch(`http://127.0.0.1:${port}/response`)
    assert.equal(fast.status, 201)
    assert.equal((await fast.arrayBuffer()).byteLength, 2 * 65536)
    const whole = await nextWaterfall(t.spans, '/response')
    t.spans.reset()
    assert.equal(stage(whole, 'write')!.attributes['journey.write.backpressure'], false, 'a streamed body, read as fast as sent')

    const failing = await fetch(`http://127.0.0.1:${port}/fails`)
    assert.equal(failing.status, 200)
    await assert.rejects(failing.arrayBuffer(), 'the client sees the connection cut mid-body')
    const cut = await nextWaterfall(t.spans, '/fails')
    assert.equal(cut.root.attributes['journey.aborted_by'], 'server')
    assert.equal(cut.root.attributes['http.response.status_code'], 200)
    assert.ok(Number(stage(cut, 'write')!.attributes['journey.write.bytes']) >= 2 * 65536, 'what left before the cut')
  } finally {
    await t.close()
  }
})
