// The journey as another Fastify app would use it (the README's few lines), with its own SDK:
// handler spans join the request's trace, unsampled requests allocate no spans, slow and failed ones are kept.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { SamplingDecision, trace } from '@opentelemetry/api'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, type ReadableSpan, type Sampler } from '@opentelemetry/sdk-trace'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { readdirSync, readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { Client, request } from 'undici'
import { connect as rawConnect } from '../helpers/raw.ts'
import { channels, createJourney, journeyTracing, type RequestRecord } from '../../src/journey/index.ts'
import { durationMs, ms, roots, stage, stageNames, waterfall } from '../helpers/spans.ts'
import { byLabel, parseMetrics, sample, sum } from '../../experiments/lib/metrics.ts'

// Head-samples POST requests only (parent-based, as OTel's default is), so one app shows both sides.
const postOnlyRoot: Sampler = {
  shouldSample: (_ctx, _traceId, name) => ({ decision: name === 'POST' ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD }),
  toString: () => 'postOnly'
}
const postOnly = new ParentBasedSampler({ root: postOnlyRoot })

const exporter = new InMemorySpanExporter()
let sdk: NodeSDK
let app: FastifyInstance
let base: string
const registry = new Registry()
const activeInHandler: Record<string, boolean> = {}

before(async () => {
  const tracing = journeyTracing({ headSampler: postOnly, spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [], logRecordProcessors: [], instrumentations: [] })
  sdk.start()
  const journey = createJourney({ registry, tracing, slowThresholdMs: 100 })
  app = Fastify({ serverFactory: journey.serverFactory({ keepAliveTimeout: 5000 }) })
  await app.register(journey.plugin)
  app.post('/work', async () => trace.getTracer('app').startActiveSpan('db.query', (span) => { span.end(); return { ok: true } }))
  app.get('/fast', async () => { activeInHandler.fast = trace.getActiveSpan() !== undefined; return 'fast' })
  app.get('/slow', async () => { await sleep(150); return 'slow' })
  app.get('/boom', async () => { throw new Error('boom') })
  // Error handling that takes time: an error handler that asks something for 30 ms before answering, and
  // an onError hook of the app's that blocks for 20 ms (as a synchronous error reporter or log write would).
  app.post('/strict', {
    errorHandler: async (_error, _req, reply) => { await sleep(30); return reply.code(400).send({ rejected: true }) }
  }, async (req) => req.body)
  // Another plugin's onSend hook that takes 5 ms, then throws (after the journey's onSend).
  app.get('/send-fails', {
    onSend: async (_req, reply, payload) => { if (reply.statusCode === 200) { await sleep(30); throw new Error('onSend failed') } return payload }
  }, async () => ({ fine: true }))
  // An app's own hook that refuses the request by throwing: the error happens between stages.
  app.post('/forbidden', { preHandler: async () => { throw Object.assign(new Error('not yours'), { statusCode: 403, code: 'APP_FORBIDDEN' }) } }, async () => 'never')
  app.get('/boom-reported', {
    onError: (_req, _reply, _err, done) => { const until = performance.now() + 20; while (performance.now() < until); done() }
  }, async () => { throw new Error('boom') })
  // An SSE-style route: the handler takes the response over and writes it itself, 40 ms later.
  app.post('/hijack', (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    setTimeout(() => reply.raw.end('written by the handler\n'), 40)
  })
  // An auth-style hook of the app's own, after the journey's: its time is between parse and decode, no stage's.
  app.get('/guarded', { onRequest: async () => { await sleep(30) } }, async () => 'in')
  // An encapsulated plugin under a prefix, as services are usually split: its own hook and not-found handler.
  await app.register(async (api) => {
    api.addHook('onRequest', async () => { await sleep(20) })
    api.get('/items/:id', async (req) => ({ id: (req.params as { id: string }).id }))
    api.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ missing: true }))
  }, { prefix: '/api' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // An upgrade the server's own 'upgrade' listener takes (here: an echo protocol; ws in noServer mode, a
  // proxy): Fastify never sees that request. (@fastify/websocket routes it through Fastify: websocket.test.ts.)
  app.server.on('upgrade', (_req, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n')
    socket.on('data', (d: Buffer) => socket.write(d))
    socket.on('end', () => socket.end())
  })
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
})
after(async () => { await app.close(); await sdk.shutdown() })
beforeEach(() => exporter.reset())

// Resolves once the journey has published the record of a request for this target: its spans and metrics
// exist by then (the consumers run inside the publication), however long a loaded machine takes to get there.
function published (target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { channels.request.unsubscribe(on); reject(new Error(`no record published for ${target} in 5 s`)) }, 5000)
    function on (message: unknown): void {
      if ((message as RequestRecord).target !== target) return
      channels.request.unsubscribe(on)
      clearTimeout(timer)
      resolve()
    }
    channels.request.subscribe(on)
  })
}

async function get (path: string, method = 'GET'): Promise<number> {
  const recorded = published(path)
  const r = await request(base + path, { method: method as 'GET' })
  await r.body.text()
  await recorded
  await sleep(20)
  return r.statusCode
}

test('spans the handler creates are children of the request span, in its trace', async () => {
  await get('/work', 'POST')
  const spans = exporter.getFinishedSpans()
  const [root] = roots(spans, '/work')
  assert.ok(root !== undefined)
  const db = spans.find(s => s.name === 'db.query')!
  assert.equal(db.spanContext().traceId, root.spanContext().traceId)
  assert.equal(db.parentSpanContext?.spanId, root.spanContext().spanId, 'the preset id reached the SDK (PresetIdGenerator)')
  assert.equal(root.attributes['journey.sampling.rule'], 'head')
  // Which release measured it, as every instrumentation says of itself: the request span and its stages.
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  for (const s of [root, ...waterfall(spans, root).stages]) assert.deepEqual([s.instrumentationScope.name, s.instrumentationScope.version], ['request-journey', version], s.name)
})

test('an unsampled, fast, successful request creates no span and no active context', async () => {
  assert.equal(await get('/fast'), 200)
  assert.equal(exporter.getFinishedSpans().length, 0)
  assert.equal(activeInHandler.fast, false)
  const text = await registry.metrics()
  assert.match(text, /journey_stage_duration_seconds_count\{stage="handler",method="GET",route="\/fast"\} 1/, 'but it is in the metrics')
})

test('a slow request is kept although the head sampler said no, and says which rule kept it', async () => {
  await get('/slow')
  const spans = exporter.getFinishedSpans()
  const [root] = roots(spans, '/slow')
  assert.ok(root !== undefined)
  assert.equal(root.attributes['journey.sampling.rule'], 'slow')
  assert.deepEqual(stageNames(waterfall(spans, root)).slice(-4), ['decode', 'handler', 'serialize', 'write'])
})

test('a client\'s wait before its first byte does not make a request slow: a preconnected connection\'s fast request is not kept', async () => {
  // A browser's preconnect, or a pool warming up: the connection is open long before its request is sent.
  async function preconnected (target: string, body: string): Promise<void> {
    const c = await rawConnect(Number(new URL(base).port))
    try {
      await sleep(150)
      const done = published(target)
      await c.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`)
      await c.read(text => text.endsWith(body))
      await done
    } finally { c.close() }
  }
  await preconnected('/fast?preconnected', 'fast')
  assert.deepEqual(roots(exporter.getFinishedSpans(), '/fast'), [], 'past the threshold (100 ms) only by the client\'s wait, which is no slowness of the request')
  await preconnected('/slow?preconnected', 'slow')
  const [root] = roots(exporter.getFinishedSpans(), '/slow')
  assert.ok(root !== undefined, 'a request slow itself is kept after the same wait')
  assert.equal(root.attributes['journey.sampling.rule'], 'slow')
  assert.ok(Number(root.attributes['journey.gap.before_request_ms']) >= 140, 'the client\'s wait is in its trace, as the gap it is')
  assert.equal(stageNames(waterfall(exporter.getFinishedSpans(), root))[0], 'accept', 'and its root span still starts at accept')
})

test('a failed request is kept with an error status', async () => {
  assert.equal(await get('/boom'), 500)
  const [root] = roots(exporter.getFinishedSpans(), '/boom')
  assert.ok(root !== undefined)
  assert.equal(root.attributes['journey.sampling.rule'], 'error')
  assert.equal(root.status.code, 2)
  assert.equal(root.attributes['error.type'], '500')
})

test('an error ends the stage it happened in; the error handler\'s time is the error_handler gap, and the books still balance', async () => {
  // A body that is not JSON: decode fails at once, then the route's error handler takes 30 ms.
  const r = await request(base + '/strict', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"not json' })
  assert.deepEqual(await r.body.json(), { rejected: true })
  assert.equal(r.statusCode, 400)
  // A handler that throws at once, then an onError hook of the app's blocks for 20 ms before Fastify's default error handler.
  assert.equal(await get('/boom-reported'), 500)
  await sleep(20)
  const spans = exporter.getFinishedSpans()
  const strict = waterfall(spans, roots(spans, '/strict')[0]!)
  const decode = stage(strict, 'decode')!
  // Microseconds; the bound leaves room for a loaded machine and still fails the 30 ms the old code read.
  assert.ok(durationMs(decode) < 20, `decode ends where parsing the body failed, not after the error handler: ${durationMs(decode)} ms`)
  assert.equal(decode.status.code, 2, 'it did not complete')
  const gap = Number(strict.root.attributes['journey.gap.error_handler_ms'])
  assert.ok(gap >= 29 && gap < 29 + 50, `the error handler's 30 ms are the error_handler gap: ${gap} ms`)
  assert.ok(Number(strict.root.attributes['journey.gap.hooks_ms']) < 15, 'and not the hooks gap (a loaded host may add a few ms)')
  assert.equal(stage(strict, 'serialize')!.attributes['journey.serialize.skipped'], false, 'what the error handler sent is serialized after it')
  assert.ok(!stageNames(strict).includes('handler'))
  const boom = waterfall(spans, roots(spans, '/boom-reported')[0]!)
  const handler = stage(boom, 'handler')!
  assert.ok(durationMs(handler) < 15, `the handler ends where it threw, not after the 20 ms of error handling: ${durationMs(handler)} ms`)
  assert.ok(Number(boom.root.attributes['journey.gap.error_handler_ms']) >= 20)
  // Fastify's default error handler serializes the error itself: no serialize of the journey's to show.
  assert.equal(stage(boom, 'serialize')!.attributes['journey.serialize.skipped'], true)
  // An error after the journey's onSend: serialize stays what it was, write (which had begun: another
  // plugin's onSend hook is write) ends at the error.
  assert.equal(await get('/send-fails'), 500)
  const sendFails = waterfall(exporter.getFinishedSpans(), roots(exporter.getFinishedSpans(), '/send-fails')[0]!)
  // 30 ms in the hook, far above what a stage of microseconds can read on a busy VM (a CI run's serialize read
  // 4.65 ms once, against a 5 ms hook and a bound of 3.5).
  assert.ok(durationMs(stage(sendFails, 'serialize')!) < 25, `serialize, not the hook's ≥ 29 ms: ${durationMs(stage(sendFails, 'serialize')!)} ms`)
  assert.equal(stage(sendFails, 'serialize')!.status.code, 0)
  const write = stage(sendFails, 'write')!
  assert.ok(durationMs(write) >= 28.9, `the hook's 30 ms (a timer may fire up to 1 ms early) are write's: ${durationMs(write)} ms`)
  assert.equal(write.status.code, 2)
  assert.ok(Number(sendFails.root.attributes['journey.gap.error_handler_ms']) > 0)
  assert.equal(sendFails.root.attributes['journey.gap.pipelined_ms'], undefined, 'no wait for an earlier response')
  // The error itself, where it happened: an exception event on the stage it ended, as the SDK's
  // recordException() writes one, with the stage's status saying what failed.
  const exceptionOf = (span: ReadableSpan): Record<string, unknown> | undefined => span.events.find(e => e.name === 'exception')?.attributes
  const decodeError = exceptionOf(decode)!
  assert.equal(decodeError['exception.type'], 'FST_ERR_CTP_INVALID_JSON_BODY')
  assert.match(String(decodeError['exception.message']), /not valid JSON/)
  assert.equal(decode.attributes['error.type'], 'FST_ERR_CTP_INVALID_JSON_BODY')
  assert.match(String(decode.status.message), /not valid JSON/)
  assert.ok(Math.abs(ms(decode.events[0]!.time) - ms(decode.endTime)) < 0.01, 'at the moment the stage ended')
  const thrown = exceptionOf(handler)!
  assert.equal(thrown['exception.type'], 'Error')
  assert.equal(thrown['exception.message'], 'boom')
  assert.match(String(thrown['exception.stacktrace']), /plugin\.test\.ts/, 'with the stack of the throw')
  for (const w of [strict, boom]) {
    assert.equal(w.root.events.length, 0, 'not on the request span too: once, where it happened')
    assert.equal(w.stages.filter(st => st.events.length > 0).length, 1)
  }
  // An app's hook that throws between stages: no stage ended, so the request span carries it.
  assert.equal(await get('/forbidden', 'POST'), 403) // POST: head-sampled here (a 4xx is no failure the error rule keeps)
  const forbidden = waterfall(exporter.getFinishedSpans(), roots(exporter.getFinishedSpans(), '/forbidden')[0]!)
  assert.equal(exceptionOf(forbidden.root)?.['exception.type'], 'APP_FORBIDDEN')
  assert.equal(forbidden.root.status.code, 0, 'a 4xx leaves the server span unset (HTTP semantic conventions)')
  assert.ok(forbidden.stages.every(st => st.events.length === 0))
  // Histograms: one error_handler gap per route, and stages plus gaps are the request duration.
  const m = parseMetrics(await registry.metrics())
  for (const [method, route, least] of [['POST', '/strict', 0.029], ['GET', '/boom-reported', 0.02], ['GET', '/send-fails', 0]] as const) {
    const labels = { method, route }
    const gapOf = (g: string): number => sample(m, 'journey_gap_duration_seconds_sum', { ...labels, gap: g })
    assert.equal(sample(m, 'journey_gap_duration_seconds_count', { ...labels, gap: 'error_handler' }), 1)
    assert.ok(gapOf('error_handler') >= least, `${route}: ${gapOf('error_handler')} s`)
    const stages = byLabel(m, 'journey_stage_duration_seconds_sum', 'stage', labels)
    const fromRead = [...stages].filter(([s]) => s !== 'accept' && s !== 'tls').reduce((n, [, v]) => n + v, 0)
    const duration = sum(m, 'http_server_request_duration_seconds_sum', { http_request_method: method, http_route: route })
    assert.ok(Math.abs(fromRead + gapOf('hooks') + gapOf('error_handler') - duration) < 1e-9, `${route}: stages ${fromRead} + gaps = duration ${duration}`)
  }
  // Requests without an error have no such gap.
  assert.equal(await get('/fast'), 200)
  const after = parseMetrics(await registry.metrics())
  assert.ok(sample(after, 'journey_gap_duration_seconds_count', { method: 'GET', route: '/fast', gap: 'hooks' }) >= 1)
  assert.ok(Number.isNaN(sample(after, 'journey_gap_duration_seconds_count', { method: 'GET', route: '/fast', gap: 'error_handler' })))
})

test('a handler that writes the response itself (reply.hijack) owns it to the end: no false cut, no serialize or write', async () => {
  assert.equal(await get('/hijack', 'POST'), 200)
  const spans = exporter.getFinishedSpans()
  const [root] = roots(spans, '/hijack')
  assert.ok(root !== undefined)
  const w = waterfall(spans, root)
  assert.deepEqual(stageNames(w).slice(-2), ['decode', 'handler'])
  const handler = stage(w, 'handler')!
  assert.equal(handler.status.code, 0, `not an error: ${handler.status.message ?? ''}`)
  assert.equal(handler.attributes['journey.handler.wrote_response'], true)
  assert.ok(durationMs(handler) >= 39, `the handler's own writing is in its stage: ${durationMs(handler)} ms`)
  assert.ok(Math.abs(ms(handler.endTime) - ms(root.endTime)) < 0.01, 'it ends when the response finished')
  const text = await registry.metrics()
  assert.match(text, /journey_stage_duration_seconds_count\{stage="handler",method="POST",route="\/hijack"\} 1/)
  assert.doesNotMatch(text, /stage="(serialize|write)",method="POST",route="\/hijack"/)
})

test('a hijacked response on a kept-alive connection counts its own bytes, not the responses before it', async () => {
  const before = parseMetrics(await registry.metrics())
  const c = await rawConnect(Number(new URL(base).port))
  await c.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n')
  await c.read(t => t.endsWith('fast'))
  await c.write('POST /hijack HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
  const hijacked = await c.read(t => t.endsWith('0\r\n\r\n')) // its chunked body's last chunk
  c.close()
  await sleep(20)
  const grew = sum(parseMetrics(await registry.metrics()), 'journey_response_written_bytes_sum', { http_route: '/hijack' }) -
    sum(before, 'journey_response_written_bytes_sum', { http_route: '/hijack' })
  assert.equal(grew, hijacked.length, 'the bytes the client received for it (the response before it counted them all)')
})

test('request duration: sub-millisecond requests fall in buckets below 5 ms, so quantiles are not interpolated up to 2.5 and 4.95 ms', async () => {
  for (let i = 0; i < 10; i++) assert.equal(await get('/fast'), 200)
  const m = parseMetrics(await registry.metrics())
  const bucket = (le: string): number => sample(m, 'http_server_request_duration_seconds_bucket', {
    le, http_request_method: 'GET', http_route: '/fast', http_response_status_code: '200', url_scheme: 'http'
  })
  // The semantic conventions' advised boundaries are all still there; five finer ones come first.
  for (const le of ['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '10']) assert.ok(!Number.isNaN(bucket(le)), `bucket ${le}`)
  assert.ok(bucket('0.0025') >= 5, `most of ten fast requests took under 2.5 ms (${bucket('0.0025')})`)
})

test('time between stages is in journey_gap_duration_seconds: an app\'s slow hook shows, and stages plus gaps are the request duration', async () => {
  // Three requests, each the first on its own connection (so each has a before_request gap too).
  for (let i = 0; i < 3; i++) {
    const client = new Client(base)
    const r = await client.request({ path: '/guarded', method: 'GET' })
    assert.equal(await r.body.text(), 'in')
    await client.close()
  }
  await sleep(20)
  const m = parseMetrics(await registry.metrics())
  const route = { method: 'GET', route: '/guarded' }
  const gap = (g: string, what: 'sum' | 'count'): number => sample(m, `journey_gap_duration_seconds_${what}`, { ...route, gap: g })
  assert.equal(gap('hooks', 'count'), 3)
  // ≥ 3 × 29 ms, not 30: a timer may fire up to a millisecond early (libuv caches the loop's time).
  assert.ok(gap('hooks', 'sum') >= 0.087 && gap('hooks', 'sum') < 0.09 + 0.06, `the 30 ms hook, three times: ${gap('hooks', 'sum')} s`)
  assert.equal(gap('before_request', 'count'), 3, 'one per connection\'s first request')
  assert.ok(Number.isNaN(gap('pipelined', 'count')), 'nothing was pipelined')
  // What the request duration histogram counts (first byte to last) is the stages from read on plus the
  // server's gaps, exactly: nothing counted twice, nothing lost.
  const stages = byLabel(m, 'journey_stage_duration_seconds_sum', 'stage', route)
  assert.ok((stages.get('accept') ?? 0) > 0, 'the connections\' accept stages are counted too, outside the request duration')
  const fromRead = [...stages].filter(([s]) => s !== 'accept' && s !== 'tls').reduce((n, [, v]) => n + v, 0)
  const duration = sample(m, 'http_server_request_duration_seconds_sum', { http_request_method: 'GET', http_route: '/guarded' })
  assert.ok(Math.abs(fromRead + gap('hooks', 'sum') - duration) < 1e-9, `stages ${fromRead} + hooks ${gap('hooks', 'sum')} = duration ${duration}`)
})

test('a connection upgraded to another protocol (WebSocket-style) leaves HTTP: its upgrade is no request, nothing is left open or counted as aborted', async () => {
  const before = parseMetrics(await registry.metrics())
  const port = Number(new URL(base).port)
  const c = connect(port, '127.0.0.1')
  let got = ''
  c.on('data', (d: Buffer) => { got += d.toString('latin1') })
  await new Promise(resolve => c.once('connect', resolve))
  const until = async (pred: () => boolean): Promise<void> => { for (let i = 0; !pred(); i++) { assert.ok(i < 200, `got: ${got}`); await sleep(10) } }
  c.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n')
  await until(() => got.endsWith('fast'))
  c.write('GET /fast HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
  await until(() => got.includes('101 Switching Protocols'))
  c.write('not http any more')
  await until(() => got.endsWith('not http any more'))
  c.end()
  await new Promise(resolve => c.once('close', resolve))
  await sleep(50)
  const after = parseMetrics(await registry.metrics())
  const grew = (name: string, labels: Record<string, string> = {}): number => sum(after, name, labels) - sum(before, name, labels)
  assert.equal(grew('http_server_request_duration_seconds_count', { http_route: '/fast' }), 1, 'the plain GET only')
  assert.equal(grew('http_server_request_duration_seconds_count', { error_type: 'aborted' }), 0)
  assert.equal(grew('journey_connections_closed_total'), 1)
  assert.equal(grew('journey_connection_requests_sum'), 1, 'the connection carried one HTTP request')
  assert.equal(grew('journey_connections_active'), 0, 'the upgraded connection\'s close is seen')
})

test('routes of an encapsulated plugin under a prefix: measured under their full template, the plugin\'s own hook is the hooks gap, its not-found answers are (unmatched)', async () => {
  const before = parseMetrics(await registry.metrics())
  for (const id of ['1', '2', 'three']) assert.equal(await get(`/api/items/${id}`), 200)
  assert.equal(await get('/api/nothing/here'), 404)
  const after = parseMetrics(await registry.metrics())
  const grew = (name: string, labels: Record<string, string>): number => sum(after, name, labels) - sum(before, name, labels)
  const items = { method: 'GET', route: '/api/items/:id' }
  assert.equal(grew('journey_stage_duration_seconds_count', { ...items, stage: 'handler' }), 3, 'one series for every id: the template, not the URL')
  const hooks = grew('journey_gap_duration_seconds_sum', { ...items, gap: 'hooks' })
  assert.ok(hooks >= 0.057 && hooks < 0.06 + 0.06, `the plugin's 20 ms hook, three times: ${hooks} s`)
  assert.ok(grew('journey_stage_duration_seconds_sum', { ...items, stage: 'handler' }) < 0.02, 'and not in the handler')
  assert.equal(grew('http_server_request_duration_seconds_count', { http_route: '(unmatched)', http_response_status_code: '404' }), 1)
  assert.ok(grew('journey_gap_duration_seconds_sum', { route: '(unmatched)', gap: 'hooks' }) >= 0.019, 'the hook ran for the not-found answer too')
  assert.equal(grew('journey_stage_duration_seconds_count', { route: '(unmatched)', stage: 'handler' }), 0, 'a not-found handler is no route handler')
})

test('the plugin is one folder: src/journey imports nothing else of this project (its optional TCP_INFO addon and version aside), so a team can copy it', () => {
  const dir = new URL('../../src/journey/', import.meta.url)
  const outside: string[] = []
  let addonSeen = false
  for (const file of readdirSync(dir).filter(f => f.endsWith('.ts'))) {
    const text = readFileSync(new URL(file, dir), 'utf8')
    // Every relative path literal, however it is used (import, createRequire(…)(…), new URL(…)).
    for (const m of text.matchAll(/'(\.\.?\/[^']*)'/g)) {
      const target = new URL(m[1]!, new URL(file, dir)).href
      if (target.endsWith('/native')) addonSeen = true // the addon's folder, which node-gyp-build searches
      // The package's own package.json, for its spans' scope version: read if it is there and ours (version.ts).
      else if (file === 'version.ts' && m[1] === '../../package.json') continue
      else if (!target.startsWith(dir.href)) outside.push(`${file}: ${m[1]}`)
    }
  }
  assert.deepEqual(outside, [])
  assert.ok(addonSeen, 'the scan reaches paths used other than by import (the addon\'s folder, a URL)')
})
