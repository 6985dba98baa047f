// journey.write.unacked_bytes: the write stage ends when the last byte is handed to the kernel, not when the
// client has it; the write span says how many bytes the kernel still held unacknowledged at that moment.
// Checked against the client's own count, read in the same instant (the response's 'finish', in-process).
import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { test, type TestContext } from 'node:test'
import type { FastifyServerOptions } from 'fastify'
import { connect } from '../helpers/raw.ts'
import { nextWaterfall, stage } from '../helpers/spans.ts'
import { tracedJourney } from '../helpers/traced.ts'
import { tcpInfoUnavailable } from '../../src/journey/tcp-info.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { renderRow } from '../../src/journey/page.ts'

const skip = tcpInfoUnavailable ?? false
const BODY = Buffer.alloc(16 * 1024 * 1024, 'x')

/** The paced reader's rate, and the most of it a stall can bank: after the test process was held off the core
 * (a loaded CI machine), a reader that caught up with its schedule at full speed emptied the server's kernel
 * buffers, and the response finished with 5 KB unacknowledged (seen once in CI). */
const READ_BYTES_PER_MS = 4 * 1024 * 1024 / 1000
const MAX_CREDIT_MS = 10

/**
 * GETs /big on a new connection, reading 4 MiB a second (in up-to-64 KiB steps, so the kernel's buffers on
 * both sides stay full), to the server's close. Returns the bytes received in all, and those received by the
 * moment the response finished (every byte handed to the kernel): counted by a subscriber that runs right
 * after the journey's, on the same event, with no I/O in between.
 */
async function pacedDownload (t: TestContext, port: number, secure: boolean): Promise<{ total: number, readAtFinish: number }> {
  const c = await connect(port, secure)
  let readAtFinish = NaN
  const onFinish = (): void => { readAtFinish = c.received() }
  diagnostics.subscribe('http.server.response.finish', onFinish)
  t.after(() => diagnostics.unsubscribe('http.server.response.finish', onFinish))
  c.socket.pause()
  await c.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  let allowed = 0
  let last = performance.now()
  const pace = setInterval(() => {
    const now = performance.now()
    allowed += Math.min(now - last, MAX_CREDIT_MS) * READ_BYTES_PER_MS
    last = now
    if (c.received() < allowed) c.socket.resume()
    else c.socket.pause()
  }, 5)
  await c.read(undefined, 30_000)
  clearInterval(pace)
  return { total: c.received(), readAtFinish }
}

for (const [secure, precision] of [[false, 'default'], [true, 'default'], [true, 'fine']] as const) {
  test(`${secure ? 'HTTPS' : 'HTTP'}${precision === 'fine' ? ', fine precision (TLS over a JS stream)' : ''}, a slow reader: what the kernel still held at the end of write is at most what the client had not read yet, and more than nothing`, { skip }, async (t) => {
    const tls = secure ? await loadTlsMaterial(undefined, undefined) : undefined
    const j = tracedJourney({ journey: { precision }, ...(tls === undefined ? {} : { fastify: { https: { key: tls.key, cert: tls.cert } } as FastifyServerOptions }) })
    t.after(() => j.close())
    const recent = j.journey.recent // the journey page's view collects from its first use
    await j.app.register(j.journey.plugin)
    j.app.get('/big', async (_req, reply) => reply.type('application/octet-stream').send(BODY))
    j.app.get('/small', async () => ({ ok: true }))
    const port = await j.listen()

    const { total, readAtFinish } = await pacedDownload(t, port, secure)
    const unreadAtFinish = total - readAtFinish
    const write = stage(await nextWaterfall(j.spans, '/big'), 'write')!
    const unacked = write.attributes['journey.write.unacked_bytes']
    t.diagnostic(`response ${total} B; at the end of write the client had read ${readAtFinish} B and the server's kernel still held ${String(unacked)} B unacknowledged`)
    assert.equal(typeof unacked, 'number')
    // Bytes the server's kernel holds unacknowledged have not reached the client's application either (those
    // it acknowledged sit in the client's receive buffer or were read). Over TLS the kernel holds records:
    // 22 bytes more per 16 KiB of plaintext (TLS 1.3), which the client's own buffer outweighs.
    assert.ok(Number(unacked) <= unreadAtFinish * (secure ? 1.002 : 1), `${String(unacked)} ≤ ${unreadAtFinish}`)
    assert.ok(Number(unacked) > 64 * 1024, `a paced reader leaves the server's kernel holding more than one read's worth: ${String(unacked)}`)
    assert.equal(write.attributes['journey.write.bytes'], total)
    // The journey page says it on the write segment.
    const [row] = recent.snapshot().recent
    assert.equal(row?.unackedBytes, unacked)
    assert.match(renderRow(row!), /data-stage="write"[^>]*title="write [\d.]+ ms[^"]*; the kernel still held [\d.]+ (MiB|KiB) the client had not acknowledged"/)

    // A response under Linux's initial send buffer (16 KiB) is not asked about: whatever it left
    // unacknowledged is at most itself, which says only that it was in flight.
    j.spans.reset()
    const f = await connect(port, secure)
    await f.write('GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await f.read()
    const small = stage(await nextWaterfall(j.spans, '/small'), 'write')!
    assert.equal(small.attributes['journey.write.unacked_bytes'], undefined)
    assert.ok(Number(small.attributes['journey.write.bytes']) > 0)
  })
}

test('HTTP/2: not said, since a connection\'s bytes are every stream\'s', { skip }, async (t) => {
  const { connect: h2connect } = await import('node:http2')
  const j = tracedJourney({ fastify: { http2: true } as FastifyServerOptions })
  t.after(() => j.close())
  await j.app.register(j.journey.plugin)
  j.app.get('/', async () => ({ ok: true }))
  const port = await j.listen()
  const client = h2connect(`http://127.0.0.1:${port}`)
  t.after(() => client.close())
  await new Promise<void>((resolve, reject) => {
    const s = client.request({ ':path': '/' })
    s.on('error', reject).resume().on('end', resolve)
  })
  const write = stage(await nextWaterfall(j.spans, '/'), 'write')!
  assert.equal(write.attributes['journey.write.unacked_bytes'], undefined)
})
