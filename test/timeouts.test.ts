// The timeouts set on our own servers (Fastify does not apply its options to servers from serverFactory).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { connect, responses, statusOf } from './helpers/raw.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ HEADERS_TIMEOUT_MS: '400', REQUEST_TIMEOUT_MS: '800', KEEP_ALIVE_TIMEOUT_MS: '300' }) })
after(async () => { await t.close() })

for (const secure of [false, true]) {
  test(`${secure ? 'HTTPS' : 'HTTP'}: headers dribbled past HEADERS_TIMEOUT_MS get 408 and are counted`, async () => {
    const c = await connect(secure ? t.server.ports.https : t.server.ports.http, secure)
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n')
    const started = performance.now()
    const text = await c.read(undefined, 5000)
    assert.equal(statusOf(text), 408, text)
    assert.ok(performance.now() - started >= 350, 'not before the timeout')
    const metrics = await (await request(`${t.admin}/metrics`)).body.text()
    assert.match(metrics, new RegExp(`journey_connection_errors_total\\{listener="${secure ? 'https' : 'http'}",reason="request_timeout"\\} [1-9]`))
  })
}

test('an idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS', async () => {
  const c = await connect(t.server.ports.http)
  await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await c.read(responses(1))
  const started = performance.now()
  await c.read(undefined, 5000) // resolves when the server closes
  const idle = performance.now() - started
  assert.ok(idle >= 250 && idle < 3000, `closed after ${idle} ms`)
})
