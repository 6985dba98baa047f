// Who cut an aborted request off. "Aborted" alone reads as "the client left", but a server can cut a
// request too: a socket timeout (Fastify's connectionTimeout, server.timeout), its shutdown deadline. The
// side that closed the connection first says which, on the request span (journey.aborted_by), the page
// and the demo's log line.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Readable } from 'node:stream'
import { nextWaterfall, roots, stage } from '../helpers/spans.ts'
import { tracedJourney } from '../helpers/traced.ts'
import { connect } from '../helpers/raw.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { fragments } from '../../src/journey/page.ts'

const t = tracedJourney()
after(() => t.close())
await t.app.register(t.journey.plugin)
t.app.get('/slow', async () => { await sleep(1000); return 'late' })
t.app.get('/fail', async (_request, reply) => reply.code(503).send('failed'))
t.app.get('/quick', async () => 'quick')
// A body that never ends: its 200 goes out with the first chunk, and the client leaves after it.
t.app.get('/stream', async (_request, reply) => {
  let sent = false
  return reply.send(new Readable({ read () { if (!sent) { sent = true; this.push('first') } } }))
})
const port = await t.listen()
void t.journey.recent // the page's view collects from its first use

/** The journey page's newest row for `route`. */
function rowOf (route: string): string {
  const row = fragments(t.journey.recent.snapshot()).rows.split('</tr>').find(r => r.includes(`data-route="${route}"`))
  assert.ok(row !== undefined, `a row for ${route}`)
  return row
}

async function abortedSpan (): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const span = roots(t.spans.getFinishedSpans()).find(s => s.attributes['journey.aborted'] === true)
    if (span !== undefined) { t.spans.reset(); return span.attributes }
    await sleep(10)
  }
  throw new Error('no aborted request span')
}

test('the server\'s socket timeout cuts a request off: aborted by the server, on the span and the page', async () => {
  t.app.server.timeout = 200 // what Fastify's connectionTimeout sets on the servers it creates
  try {
    const c = await connect(port)
    await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
    assert.equal(await c.read(), '', 'closed without an answer, after the timeout')
    const a = await abortedSpan()
    assert.equal(a['journey.aborted_by'], 'server')
    const m = parseMetrics(await t.registry.metrics())
    assert.equal(sum(m, 'http_server_request_duration_seconds_count', { error_type: 'aborted' }), 1)
    const recent = t.journey.recent.snapshot().recent
    assert.equal(recent[0]!.abortedBy, 'server')
    assert.match(fragments(t.journey.recent.snapshot()).rows, /aborted by server/)
  } finally {
    t.app.server.timeout = 0
  }
})

test('a client that leaves mid-handler (here by half-closing, which Node\'s HTTP/1 server takes as leaving): aborted by the client', async () => {
  const c = await connect(port)
  await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await sleep(50)
  c.socket.end()
  const a = await abortedSpan()
  assert.equal(a['journey.aborted_by'], 'client')
  assert.equal(t.journey.recent.snapshot().recent[0]!.abortedBy, 'client')
})

test('the request-duration metric says it as the span does: a status only where one was sent, the error in error_type', async () => {
  const c = await connect(port)
  await c.write('GET /fail HTTP/1.1\r\nHost: x\r\n\r\n')
  assert.match(await c.read(text => text.includes('failed')), /^HTTP\/1\.1 503/)
  await c.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
  assert.match(await c.read(text => text.includes('first')), /HTTP\/1\.1 200/)
  c.close()
  const a = await abortedSpan()
  assert.equal(a['http.response.status_code'], 200, 'the status it had sent')
  assert.equal(a['error.type'], 'aborted')
  assert.match(rowOf('/stream'), /title="the client closed the connection before the response finished; its 200 had gone out"/, 'and the page says so')
  const text = await t.registry.metrics()
  const series = (labels: string): RegExp => new RegExp(`^http_server_request_duration_seconds_count\\{http_request_method="GET",${labels},url_scheme="http",network_protocol_version="1\\.1"\\} 1$`, 'm')
  assert.match(text, series('http_route="/stream",http_response_status_code="200",error_type="aborted"'), 'cut off after its 200: both')
  assert.match(text, series('http_route="/fail",http_response_status_code="503",error_type="503"'), 'a 5xx: its status is its error')
  // The tests above cut /slow off before it answered: no status, and no empty label standing for one.
  assert.match(text, /^http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/slow",error_type="aborted",url_scheme="http",network_protocol_version="1\.1"\} [1-9]$/m)
  assert.doesNotMatch(text, /=""/, 'an empty value is no label')
})

test('a response cut off mid-body: its write span counts the bytes the socket took before the cut, which the client read', async () => {
  t.spans.reset()
  const c = await connect(port)
  await c.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
  const got = await c.read(text => text.includes('first\r\n'))
  c.close()
  const w = await nextWaterfall(t.spans, '/stream')
  t.spans.reset()
  assert.equal(w.root.attributes['journey.aborted'], true)
  assert.equal(stage(w, 'write')?.attributes['journey.write.bytes'], Buffer.byteLength(got), 'what left before the cut, not 0')
})

test('a response made for a connection Node had already closed says no status: none went out', async () => {
  // The malformed request behind it gets Node's 400 and the close in the same read; the handler answers a
  // moment later, before the close event, and Node marks its headers sent though the socket took nothing.
  const c = await connect(port)
  await c.write('GET /quick HTTP/1.1\r\nHost: x\r\n\r\nGET /\u0000 HTTP/1.1\r\nHost: x\r\n\r\n')
  const text = await c.read()
  assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 400'], 'the client read only Node\'s 400')
  const a = await abortedSpan()
  assert.equal(a['http.route'], '/quick')
  assert.equal(a['http.response.status_code'], undefined, 'no status went out')
  assert.doesNotMatch(rowOf('/quick'), /had gone out/)
  assert.match(await t.registry.metrics(), /^http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/quick",error_type="aborted",url_scheme="http",network_protocol_version="1\.1"\} 1$/m)
})
