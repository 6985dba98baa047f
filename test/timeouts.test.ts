// The timeouts set on our own servers (Fastify does not apply its options to servers from serverFactory).
import assert from 'node:assert/strict'
import { Server as HttpServer } from 'node:http'
import { after, before, test } from 'node:test'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import { request } from 'undici'
import { connect, responses, statusOf } from './helpers/raw.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'
import { roots, waterfall } from './helpers/spans.ts'

let t: TestServer
before(async () => {
  t = await startTestServer({
    HEADERS_TIMEOUT_MS: '400', REQUEST_TIMEOUT_MS: '800', KEEP_ALIVE_TIMEOUT_MS: '300',
    CONNECTION_TIMEOUT_MS: '1000', IO_MAX_MS: '500', COMPUTE_MAX_MS: '500'
  })
})
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

for (const secure of [false, true]) {
  test(`${secure ? 'HTTPS' : 'HTTP'}: an idle keep-alive connection is closed KEEP_ALIVE_TIMEOUT_MS (advertised in whole seconds) plus Node's keepAliveTimeoutBuffer after its response`, async () => {
    // Node ≥ 24.6 closes an idle connection this much after the timeout it advertises (1 s by default), so a
    // client reusing it just before that does not race the close; docs/configuration.md says so.
    const buffer = (new HttpServer() as { keepAliveTimeoutBuffer?: number }).keepAliveTimeoutBuffer ?? 0
    // Where Node has one, it is the 1 s docs/configuration.md says (a Node with none closes at the timeout).
    if (buffer !== 0) assert.equal(buffer, 1000, 'the buffer docs/configuration.md states')
    const c = await connect(secure ? t.server.ports.https : t.server.ports.http, secure)
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    const text = await c.read(responses(1))
    const started = performance.now()
    await c.read(undefined, 5000) // resolves when the server closes
    const idle = performance.now() - started
    assert.match(text, /\r\nKeep-Alive: timeout=0\r\n/i, 'whole seconds: 300 ms advertised as 0')
    assert.ok(idle >= 300 + buffer - 30 && idle < 300 + buffer + 1500, `closed after ${idle} ms (buffer ${buffer} ms)`)
  })
}

for (const secure of [false, true]) {
  test(`${secure ? 'HTTPS' : 'HTTP'}: a client that stops reading its response is cut off after CONNECTION_TIMEOUT_MS; its span ends in write, aborted by the server`, async () => {
    t.exporter.reset()
    const c = await connect(secure ? t.server.ports.https : t.server.ports.http, secure)
    // 50 MiB: far more than the kernel's socket buffers hold, so the server's writes stall.
    await c.write('GET /download?kb=51200 HTTP/1.1\r\nHost: x\r\n\r\n')
    c.socket.pause()
    const started = performance.now()
    const isCut = (r: ReadableSpan): boolean => r.attributes['url.path'] === '/download' && r.attributes['journey.aborted'] === true
    const spans = await t.spansWhere(s => roots(s).some(isCut), 10_000)
    const waited = performance.now() - started
    c.close()
    const journey = waterfall(spans, roots(spans).find(isCut)!)
    assert.equal(journey.root.attributes['journey.aborted_by'], 'server')
    assert.ok(waited >= 900 && waited < 8000, `cut off after ${waited} ms`)
    assert.ok(c.received() < 51200 * 1024, 'the client did not have the whole body')
    assert.equal(journey.stages.at(-1)!.name, 'journey.write', 'the stalled stage was write')
  })
}
