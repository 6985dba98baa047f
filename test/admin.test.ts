// The admin listener on its own (src/admin.ts): what its close does to connections still open.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ServerResponse } from 'node:http'
import pino from 'pino'
import { createAdmin } from '../src/admin.ts'
import { connect } from './helpers/raw.ts'

test('closing the admin listener lets a large response still being written to a slow reader arrive whole', async () => {
  // A scrape of a service with hundreds of routes runs to 13 MB (docs/hardening.md), more than the kernel's
  // socket buffers hold: a scraper that does not ask for gzip reads it while the process shuts down.
  const body = Buffer.alloc(16 * 1024 * 1024, 'x')
  const admin = await createAdmin(pino({ level: 'silent' }))
  let response: ServerResponse | undefined
  admin.get('/big', async (_request, reply) => { response = reply.raw; return await reply.type('text/plain').send(body) })
  await admin.listen({ port: 0, host: '127.0.0.1' })
  const c = await connect((admin.server.address() as { port: number }).port)
  c.socket.pause() // not reading: the kernel's buffers fill, and the rest waits in the server
  await c.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await new Promise(resolve => setTimeout(resolve, 300)) // the response has ended (sent in one piece)
  // What the test is about, so it cannot pass for want of it (a host whose socket buffers take 16 MB at once):
  // Node has the response ended, and not yet written, as the close begins.
  assert.ok(response?.writableEnded === true && !response.writableFinished, 'the response is ended but still being written when the close begins')
  const closed = admin.close()
  await new Promise(resolve => setTimeout(resolve, 300))
  c.socket.resume()
  const text = await c.read(undefined, 20_000)
  const head = text.slice(0, text.indexOf('\r\n\r\n'))
  assert.match(head, /^HTTP\/1\.1 200 /)
  assert.equal(c.received() - head.length - 4, body.length, `the whole body (the client's socket error: ${c.error()?.message ?? 'none'})`)
  await closed
})
