// HTTP/2 (Fastify's `http2: true`, plain and over TLS): each stream is a request with its own stages from
// parse on (Node reads the frames natively: no read stage, and the spans say so), streams on one connection
// interleave without a pipelined gap, and a stream the client resets ends its record at once, aborted.
import assert from 'node:assert/strict'
import { connect, constants, type ClientHttp2Session } from 'node:http2'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { gunzipSync } from 'node:zlib'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import compress from '@fastify/compress'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Registry } from 'prom-client'
import { Agent, request } from 'undici'
import { createJourney, journeyTracing, summarize, type JourneySummary } from '../../src/journey/index.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { durationMs, roots, stageNames, waterfall } from '../helpers/spans.ts'
import { h2, h2Frame, h2Preface, h2RawExchange, h2RawRequest, hpackRequest } from '../helpers/h2.ts'

const closing: Array<() => Promise<unknown>> = []
after(async () => { for (const close of closing.reverse()) await close() })

interface H2App { app: FastifyInstance, errors: Error[], registry: Registry, spans: InMemorySpanExporter, summaries: Map<string, JourneySummary>, url: string, journey: ReturnType<typeof createJourney> }

async function h2App (opts: Record<string, unknown> = {}, setup?: (app: FastifyInstance) => Promise<void>): Promise<H2App> {
  const spans = new InMemorySpanExporter()
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })], finishedRequestSpans: true })
  const provider = new TracerProvider(tracing.sdkOptions)
  const registry = new Registry()
  const journey = createJourney({ registry, tracing, tracer: provider.getTracer('request-journey') })
  const app = Fastify({ http2: true, ...opts } as FastifyServerOptions)
  closing.push(async () => { await app.close(); journey.close(); await provider.shutdown() })
  await app.register(journey.plugin)
  // What a log line reads at onResponse: the record must be finished by then.
  const summaries = new Map<string, JourneySummary>()
  app.addHook('onResponse', async (req) => { const s = req.journey === null ? undefined : summarize(req.journey); if (s !== undefined) summaries.set(req.url, s) })
  app.get('/', async () => ({ hello: 'h2' }))
  // Errors Fastify saw while replying: the journey's own hooks must add none.
  const errors: Error[] = []
  app.addHook('onError', async (_req, _reply, err) => { errors.push(err) })
  app.get('/slow', async () => { await sleep(40); return 'slow' })
  app.get('/never', async (_req, reply) => { await sleep(2000); return reply.send('late') })
  app.post('/echo', async (req) => req.body)
  await setup?.(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const secure = 'https' in opts
  return { app, errors, registry, spans, summaries, journey, url: `${secure ? 'https' : 'http'}://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

/**
 * Waits (up to 2 s) until the registry's `metric` sums to `n`: an HTTP/2 response ends on the server when
 * its stream closes, which can come after the client has read the whole response (and a connection after that).
 */
async function counted (registry: Registry, n: number, metric = 'http_server_request_duration_seconds_count'): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (sum(parseMetrics(await registry.metrics()), metric, {}) >= n) return
    await sleep(20)
  }
}

function session (url: string): ClientHttp2Session {
  const s = connect(url, { rejectUnauthorized: false })
  closing.push(async () => { s.destroy() })
  return s
}

test('h2c: streams on one connection are requests, each with its stages from parse on; the books balance', async () => {
  const { registry, spans, summaries, url, journey } = await h2App()
  void journey.recent // the page's view collects from its first use
  const s = session(url)
  assert.deepEqual(await Promise.all([h2(s, '/slow'), h2(s, '/'), h2(s, '/echo', 'POST', '{"a":1}')]), [200, 200, 200])
  await counted(registry, 3)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 3)
  assert.equal(sum(m, 'journey_connections_accepted_total', { listener: 'http' }), 1, 'one connection')
  for (const stage of ['parse', 'decode', 'handler', 'serialize', 'write']) {
    assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage }), 3, stage)
  }
  assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage: 'read' }), 0, 'no read stage: Node reads HTTP/2 frames natively')
  assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage: 'accept' }), 1, 'accept on the connection\'s first stream only')
  assert.equal(sum(m, 'journey_gap_duration_seconds_count', { gap: 'pipelined' }), 0, 'streams do not wait for each other')
  assert.equal(sum(m, 'journey_response_written_bytes_count', {}), 0, 'no per-response byte count: the socket\'s bytes are every stream\'s')
  // The histograms balance as on HTTP/1.1, from parse on: stages plus the hooks gap are the request duration.
  const fromParse = sum(m, 'journey_stage_duration_seconds_sum', {}) - sum(m, 'journey_stage_duration_seconds_sum', { stage: 'accept' })
  const duration = sum(m, 'http_server_request_duration_seconds_sum', {})
  const hooks = sum(m, 'journey_gap_duration_seconds_sum', { gap: 'hooks' })
  assert.ok(Math.abs(fromParse + hooks - duration) < 1e-9, `stages ${fromParse} + hooks ${hooks} = duration ${duration}`)

  const requests = roots(spans.getFinishedSpans())
  assert.equal(requests.length, 3)
  const port = Number(new URL(url).port)
  for (const root of requests) {
    assert.equal(root.attributes['network.protocol.version'], '2')
    assert.equal(root.attributes['server.address'], '127.0.0.1', 'from :authority')
    assert.equal(root.attributes['server.port'], port)
    assert.equal(root.attributes['journey.read.seen'], false)
    assert.equal(root.attributes['journey.gap.pipelined_ms'], undefined)
    const w = waterfall(spans.getFinishedSpans(), root)
    assert.ok(!stageNames(w).includes('read'))
    // The stages from parse on plus the gaps after the request's first mark are the request span.
    const stagesMs = w.stages.filter(x => x.name !== 'journey.accept').reduce((a, x) => a + durationMs(x), 0)
    const gaps = Number(root.attributes['journey.gap.hooks_ms'] ?? 0) + Number(root.attributes['journey.gap.error_handler_ms'] ?? 0)
    const accept = w.stages.find(x => x.name === 'journey.accept')
    const idle = accept === undefined ? 0 : durationMs(accept) + Number(root.attributes['journey.gap.before_request_ms'])
    assert.ok(Math.abs(durationMs(root) - idle - stagesMs - gaps) < 0.05, `${root.attributes['http.route']}: ${durationMs(root)} vs ${idle} + ${stagesMs} + ${gaps}`)
  }
  const page = journey.recent.snapshot().recent
  assert.deepEqual(page.map(r => r.http2), [true, true, true], 'the page marks HTTP/2 requests')
  const slow = summaries.get('/slow')
  assert.ok(slow !== undefined, 'the record is finished when onResponse runs')
  assert.ok(slow.stages.handler! >= 35, `handler ${slow.stages.handler}`)
  assert.ok(Math.abs(slow.ms - (slow.stages.parse! + slow.stages.decode! + slow.stages.handler! + slow.stages.serialize! + slow.stages.write! + slow.hooksMs)) < 0.01)
})

test('h2c: a compressed stream\'s write span says its encoding, as on HTTP/1.1', async () => {
  const body = JSON.stringify({ rows: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `row ${i}` })) })
  const { spans, url } = await h2App({}, async (app) => {
    await app.register(compress, { global: false })
    app.get('/big', { compress: {} }, async (_req, reply) => reply.type('application/json').send(body))
  })
  const s = session(url)
  const got = await new Promise<{ encoding: unknown, bytes: Buffer }>((resolve, reject) => {
    const stream = s.request({ ':path': '/big', 'accept-encoding': 'gzip' })
    const chunks: Buffer[] = []
    let encoding: unknown
    stream.on('response', h => { encoding = h['content-encoding'] })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve({ encoding, bytes: Buffer.concat(chunks) }))
    stream.on('error', reject)
  })
  assert.equal(got.encoding, 'gzip')
  assert.equal(gunzipSync(got.bytes).toString(), body)
  let root
  for (let i = 0; i < 100 && root === undefined; i++) {
    root = roots(spans.getFinishedSpans()).find(r => r.attributes['http.route'] === '/big')
    if (root === undefined) await sleep(20)
  }
  assert.ok(root !== undefined, 'the stream\'s request span')
  const write = waterfall(spans.getFinishedSpans(), root).stages.find(x => x.name === 'journey.write')!
  assert.equal(write.attributes['journey.write.content_encoding'], 'gzip')
})

test('h2 over TLS next to HTTP/1.1 (allowHTTP1): the TLS handshake says h2; an HTTP/1.1 client on the same port gets its read stage', async () => {
  const material = await loadTlsMaterial(undefined, undefined)
  const { registry, spans, url } = await h2App({ https: { key: material.key, cert: material.cert, allowHTTP1: true } })
  const s = session(url)
  assert.equal(await h2(s, '/'), 200)
  assert.equal(await h2(s, '/'), 200)
  const agent = new Agent({ allowH2: false, connect: { rejectUnauthorized: false } }) // undici offers h2 by ALPN unless told not to
  closing.push(() => agent.close())
  const r = await request(`${url}/`, { dispatcher: agent })
  await r.body.text()
  assert.equal(r.statusCode, 200)
  await counted(registry, 3)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_tls_handshake_duration_seconds_count', { listener: 'https' }), 2)
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { url_scheme: 'https' }), 3)
  assert.equal(sum(m, 'journey_stage_duration_seconds_count', { stage: 'read' }), 1, 'the HTTP/1.1 request only')
  assert.equal(sum(m, 'journey_connection_errors_total', {}), 0, 'neither protocol is an error')
  const byVersion = roots(spans.getFinishedSpans()).map(x => x.attributes['network.protocol.version']).sort()
  assert.deepEqual(byVersion, ['1.1', '2', '2'])
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { network_protocol_version: '2' }), 2, 'the metric tells the protocols apart too')
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { network_protocol_version: '1.1' }), 1)
  const tlsStages = spans.getFinishedSpans().filter(x => x.name === 'journey.tls').map(x => x.attributes['tls.next_protocol']).sort()
  assert.deepEqual(tlsStages, ['h2', 'http/1.1'])
})

test('a stream the client resets ends its record at once, aborted; the connection lives on and nothing is counted twice', async () => {
  const { registry, spans, url } = await h2App()
  const s = session(url)
  assert.equal(await h2(s, '/'), 200)
  const stream = s.request({ ':path': '/never' })
  stream.on('error', () => {})
  await sleep(100) // the handler is running
  stream.close(constants.NGHTTP2_CANCEL)
  await counted(registry, 2)
  let m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { error_type: 'aborted' }), 1, 'ended at the reset, not at the connection\'s close')
  assert.equal(sum(m, 'journey_connections_closed_total', {}), 0, 'the connection is still open')
  const aborted = roots(spans.getFinishedSpans()).find(x => x.attributes['journey.aborted'] === true)
  assert.ok(aborted !== undefined)
  assert.equal(aborted.attributes['http.route'], '/never')
  assert.equal(aborted.attributes['journey.aborted_by'], undefined, 'not said: the connection is open, and Node does not say which side reset the stream')
  assert.equal(aborted.status.message, 'stream reset before the response finished', 'not a connection closed')
  assert.equal(await h2(s, '/'), 200, 'the connection serves on')
  s.close()
  await counted(registry, 3)
  await counted(registry, 1, 'journey_connections_closed_total')
  m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 3)
  assert.equal(sum(m, 'journey_connections_closed_total', {}), 1)
})

test('a stream reset while its handler runs: the handler\'s late reply is no error, and the record ends once, aborted', async () => {
  // Found by a rapid-reset client: the journey's onSend read the closed stream's socket (undefined by then)
  // and threw, so every such request became a 500 with a TypeError in the log and on its span.
  const { errors, registry, spans, url } = await h2App()
  const s = session(url)
  const stream = s.request({ ':path': '/slow' })
  stream.on('error', () => {})
  await sleep(10) // the handler is running
  stream.close(constants.NGHTTP2_CANCEL)
  await counted(registry, 1)
  await sleep(80) // the handler's reply comes after the reset
  assert.deepEqual(errors.map(e => e.message), [], 'no error from replying to a closed stream')
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 1)
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { error_type: 'aborted' }), 1)
  const aborted = roots(spans.getFinishedSpans())
  assert.equal(aborted.length, 1)
  assert.deepEqual(aborted[0]!.events.map(e => e.name), [], 'no exception event on the aborted request')
  assert.equal(await h2(s, '/'), 200, 'the connection serves on')
})

test('a session the server\'s timeout destroys cuts its running stream off: aborted by the server', async () => {
  // Node destroys a session idle past the server's timeout (Fastify's connectionTimeout; http2SessionTimeout
  // set as short, or Fastify's own graceful close comes first). Its streams close before its socket does.
  const { registry, spans, url } = await h2App({ connectionTimeout: 300, http2SessionTimeout: 300 })
  const s = session(url)
  s.on('error', () => {})
  const stream = s.request({ ':path': '/never' })
  stream.on('error', () => {})
  const closed = new Promise(resolve => stream.on('close', resolve))
  await closed
  await counted(registry, 1)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { error_type: 'aborted' }), 1)
  const aborted = roots(spans.getFinishedSpans()).find(x => x.attributes['journey.aborted'] === true)
  assert.ok(aborted !== undefined)
  assert.equal(aborted.attributes['journey.aborted_by'], 'server')
  assert.equal(aborted.status.message, 'connection closed before the response finished')
  assert.ok(durationMs(aborted) >= 250 && durationMs(aborted) < 1900, `cut at the timeout (300 ms), not at the handler's end (2 s): ${durationMs(aborted)} ms`)
})

test('an answer Fastify gives before any hook is counted on HTTP/2 too (a malformed URL\'s 400): parse and write, no read', async () => {
  const { registry, spans, url } = await h2App()
  const s = session(url)
  assert.equal(await h2(s, '/'), 200)
  assert.equal(await h2(s, '/%zz'), 400)
  await counted(registry, 2)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { http_route: '(unmatched)', http_response_status_code: '400', network_protocol_version: '2' }), 1)
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 2, 'each request once')
  const early = roots(spans.getFinishedSpans()).find(x => x.attributes['journey.before_hooks'] === true)
  assert.ok(early !== undefined, 'its request span')
  assert.equal(early.attributes['http.response.status_code'], 400)
  assert.equal(early.attributes['url.path'], '/%zz')
  assert.equal(early.attributes['server.address'], '127.0.0.1')
  assert.deepEqual(stageNames(waterfall(spans.getFinishedSpans(), early)), ['parse', 'write'])
})

test('behind an async onRequest hook registered before the journey, an HTTP/2 request is still one record, under its route; reset before the hook ends, once, aborted', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  void journey.recent // the page's view collects from its first use
  const app = Fastify({ http2: true })
  closing.push(async () => { await app.close(); journey.close() })
  // Defers the journey's hook: the stream is seen unclaimed first.
  app.addHook('onRequest', async (request) => { await sleep(request.url === '/held' ? 200 : 5) })
  await app.register(journey.plugin)
  app.get('/late', async () => ({ ok: true }))
  app.get('/held', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const s = session(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  assert.equal(await h2(s, '/late'), 200)
  assert.equal(await h2(s, '/late'), 200)
  await counted(registry, 2)
  await sleep(50)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 2, 'claimed by the late hook, not counted twice')
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { http_route: '/late', http_response_status_code: '200' }), 2)
  // A stream the client resets while the hook before the journey's still holds it: no route matched yet
  // as far as the journey saw, so (unmatched), aborted at the reset, and once.
  const held = s.request({ ':path': '/held' })
  held.on('error', () => {})
  await sleep(30)
  held.close(constants.NGHTTP2_CANCEL)
  await counted(registry, 3)
  await sleep(300) // past the hook's end: nothing more is counted for it
  const after = parseMetrics(await registry.metrics())
  assert.equal(sum(after, 'http_server_request_duration_seconds_count', {}), 3)
  assert.equal(sum(after, 'http_server_request_duration_seconds_count', { http_route: '(unmatched)', error_type: 'aborted' }), 1)
  const reset = journey.recent.snapshot().recent.find(r => r.aborted)
  assert.deepEqual(reset?.stages.map(x => x.stage), ['parse'], 'nothing was written for it: no write stage')
})

test('a connection closed under a running stream ends that stream once, aborted', async () => {
  const { registry, url } = await h2App()
  const s = session(url)
  const stream = s.request({ ':path': '/never' })
  stream.on('error', () => {})
  await sleep(100)
  s.destroy()
  await counted(registry, 1)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 1)
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { error_type: 'aborted' }), 1)
})

test('bad HTTP/2 input is counted: a protocol error (h2c), a TLS client that offers no protocol (403) or only HTTP/1.1 (failed handshake)', async () => {
  const { connect: connectTcp } = await import('node:net')
  const { connect: connectTls } = await import('node:tls')
  const plain = await h2App()
  const port = Number(new URL(plain.url).port)
  // The connection preface, then a SETTINGS frame of length 3 (settings come in 6-byte pairs): FRAME_SIZE_ERROR.
  const bad = connectTcp(port, '127.0.0.1')
  bad.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  bad.write(Buffer.from('000003040000000000000102', 'hex'))
  bad.resume()
  await new Promise(resolve => bad.on('close', resolve))
  await sleep(20)
  let m = parseMetrics(await plain.registry.metrics())
  assert.equal(sum(m, 'journey_connection_errors_total', { listener: 'http', reason: 'http2_protocol' }), 1)
  assert.equal(sum(m, 'journey_connections_closed_total', {}), 1)

  const material = await loadTlsMaterial(undefined, undefined)
  const secure = await h2App({ https: { key: material.key, cert: material.cert } })
  const tlsPort = Number(new URL(secure.url).port)
  const noAlpn = connectTls({ port: tlsPort, host: '127.0.0.1', rejectUnauthorized: false }) // offers no ALPN
  let answer = ''
  noAlpn.on('data', (d: Buffer) => { answer += d.toString() })
  noAlpn.on('secureConnect', () => noAlpn.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  await new Promise(resolve => noAlpn.on('close', resolve))
  assert.match(answer, /^HTTP\/1\.0 403/, 'Node\'s own answer, unchanged by observing')
  await sleep(20)
  m = parseMetrics(await secure.registry.metrics())
  assert.equal(sum(m, 'journey_connection_errors_total', { listener: 'https', reason: 'unknown_protocol' }), 1)
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 0)

  // Offering only HTTP/1.1 to a server without allowHTTP1 fails the handshake itself.
  const http1Only = connectTls({ port: tlsPort, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
  http1Only.on('error', () => {})
  await new Promise(resolve => http1Only.on('close', resolve))
  await sleep(20)
  m = parseMetrics(await secure.registry.metrics())
  assert.equal(sum(m, 'journey_tls_handshake_failures_total', { listener: 'https', reason: 'no_application_protocol' }), 1)
})

test('a header block past maxHeaderListSize, which Node\'s own client refuses to send, is a counted protocol error when a raw client sends it', async () => {
  const { registry, url } = await h2App()
  const port = Number(new URL(url).port)
  // Served, the client closes after its response; refused, the server closes.
  const send = (headerBytes: number): ReturnType<typeof h2RawExchange> =>
    h2RawExchange(port, h2RawRequest(hpackRequest({ ':authority': 'localhost', 'x-big': 'a'.repeat(headerBytes) })), frames => frames.some(f => f.type === 0x0 && f.stream === 1))
  // Under the 64 KiB default (20 KB, past HTTP/1.1's 16 KiB header limit): served, so the raw client is right.
  const served = await send(20_000)
  assert.ok(served.some(f => f.type === 0x1 && f.stream === 1), 'a response\'s HEADERS on stream 1')
  await counted(registry, 1)
  let m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', { http_response_status_code: '200' }), 1)

  const refused = await send(70_000)
  assert.ok(refused.some(f => f.type === 0x7), `GOAWAY: ${JSON.stringify(refused)}`)
  assert.ok(!refused.some(f => f.type === 0x1), 'no response')
  m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_connection_errors_total', { listener: 'http', reason: 'http2_protocol' }), 1)
  assert.equal(sum(m, 'journey_connections_closed_total', { by: 'server' }), 1, 'the server closed it')
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 1, 'no request: no JavaScript saw one')
})

test('a malformed header block (a connection-specific header) never reaches JavaScript: RST_STREAM, nothing counted; past Node\'s 1,000 the session ends, counted', async () => {
  const { registry, url } = await h2App()
  const port = Number(new URL(url).port)
  const preface = h2Preface()
  // HTTP/2 forbids connection-specific headers (RFC 9113, 8.2.2): nghttp2 resets such a stream while it
  // decodes the block, and Node reports that to no listener (it only counts it against maxSessionInvalidFrames).
  const malformed = hpackRequest({ ':authority': 'localhost', connection: 'keep-alive' })
  const good = hpackRequest({ ':authority': 'localhost' })
  const headers = (stream: number, block: Buffer): Buffer => h2Frame(0x1, 0x5, stream, block) // END_STREAM | END_HEADERS

  // One malformed stream, then a good one on the same connection: the first reset, the second served.
  const one = await h2RawExchange(port, Buffer.concat([preface, headers(1, malformed), headers(3, good)]), f => f.some(x => x.type === 0x0 && x.stream === 3))
  assert.deepEqual(one.filter(f => f.stream === 1).map(f => [f.type, f.rstError]), [[0x3, 0x1]], 'stream 1: RST_STREAM PROTOCOL_ERROR alone')
  assert.ok(one.some(f => f.type === 0x1 && f.stream === 3), 'stream 3 answered on the same connection')
  await counted(registry, 1)
  let m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 1, 'only the good stream is a request')
  assert.equal(sum(m, 'journey_connection_errors_total', { reason: 'http2_protocol' }), 0, 'one such stream is no protocol error either')

  // A flood of them on one session: Node ends it past maxSessionInvalidFrames (1,000 by default).
  const flood = Buffer.concat([preface, ...Array.from({ length: 1100 }, (_, i) => headers(2 * i + 1, malformed))])
  const frames = await h2RawExchange(port, flood, f => f.some(x => x.type === 0x7))
  assert.ok(frames.some(f => f.type === 0x7), 'GOAWAY')
  m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_connection_errors_total', { listener: 'http', reason: 'http2_protocol' }), 1)
  assert.equal(sum(m, 'http_server_request_duration_seconds_count', {}), 1, 'still no request from the malformed streams')
})
