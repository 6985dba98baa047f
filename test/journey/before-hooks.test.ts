// Requests answered before any Fastify hook runs — by Node itself (400 for a missing Host, 417 for an
// unknown Expect, 503 past maxRequestsPerSocket, closing an unhandled CONNECT) or by Fastify ahead of its
// hooks (400 for a malformed URL, 503 while closing) — are still requests the server answered: counted,
// head-sampled, with the stages that were seen, never a second record for one request.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { AlwaysOffSampler, AlwaysOnSampler, TracerProvider, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { createJourney, journeyTracing, type Journey } from '../../src/journey/index.ts'
import { countedBatchProcessor } from '../../src/journey/index.ts'
import { connect, countResponses, statusesOf, statusOf } from '../helpers/raw.ts'
import { roots, stageNames, waterfall } from '../helpers/spans.ts'

const exporter = new InMemorySpanExporter()
let sdk: NodeSDK
let journey: Journey
let app: FastifyInstance
let port: number
const registry = new Registry()

before(async () => {
  // Nothing is head-sampled: whatever is traced here was kept by the error rule.
  const tracing = journeyTracing({ headSampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }), spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [], logRecordProcessors: [], instrumentations: [] })
  sdk.start()
  journey = createJourney({ registry, tracing })
  app = Fastify({ serverFactory: journey.serverFactory() })
  await app.register(journey.plugin)
  app.get('/ok', async () => ({ ok: true }))
  app.post('/ok', async () => ({ ok: true }))
  app.get('/user/:id', async () => ({ ok: true }))
  app.get('/slow', async () => { await sleep(100); return { ok: true } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = (app.server.address() as { port: number }).port
})
after(async () => { await app.close(); journey.close(); await sdk.shutdown() })
beforeEach(() => { registry.resetMetrics(); exporter.reset() })

/** Every sample of `name` as `labels → value`, labels in exposition order. */
async function samples (name: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line)
    if (m?.[1] === name) out.set(m[2]!, Number(m[3]))
  }
  return out
}
const requests = async (): Promise<Map<string, number>> => samples('http_server_request_duration_seconds_count')
const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0)
// A 5xx is its own error.type, as the semantic conventions have it.
const label = (method: string, route: string, status: string): string =>
  `http_request_method="${method}",http_route="${route}",http_response_status_code="${status}",${status.startsWith('5') ? `error_type="${status}",` : ''}url_scheme="http",network_protocol_version="1.1"`

/** Sends `bytes` on a new connection and returns what came back when the server closed it. */
async function exchange (bytes: string): Promise<string> {
  const c = await connect(port)
  await c.write(bytes)
  const text = await c.read(undefined, 3000)
  await sleep(20)
  return text
}

test("Node's and Fastify's own answers are counted, with read, parse and write and nothing in between", async () => {
  assert.equal(statusOf(await exchange('GET /ok HTTP/1.1\r\n\r\n')), 400, 'Node: HTTP/1.1 without Host')
  assert.equal(statusOf(await exchange('POST /ok HTTP/1.1\r\nHost: x\r\nExpect: coffee\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')), 417, 'Node: unknown expectation')
  assert.equal(statusOf(await exchange('GET /user/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')), 400, 'Fastify: malformed URL')

  const counted = await requests()
  assert.equal(counted.get(label('GET', '(unmatched)', '400')), 2)
  assert.equal(counted.get(label('POST', '(unmatched)', '417')), 1)
  assert.equal(total(counted), 3, `one count per request: ${JSON.stringify([...counted])}`)

  const stages = await samples('journey_stage_duration_seconds_count')
  for (const s of ['read', 'parse', 'write']) assert.equal(stages.get(`stage="${s}",method="GET",route="(unmatched)"`), 2, s)
  for (const s of ['decode', 'handler', 'serialize']) assert.equal(stages.get(`stage="${s}",method="GET",route="(unmatched)"`), undefined, s)
  // Their bytes are not measured (nothing marked where their answer started): no observation, not a wrong one.
  assert.equal((await samples('journey_response_written_bytes_count')).get('http_request_method="GET",http_route="(unmatched)"') ?? 0, 0)
  // 4xx answers are not kept: nothing head-sampled, nothing failed.
  assert.equal(roots(exporter.getFinishedSpans()).length, 0)
})

test('pipelined: an answer Node gives between Fastify\'s is matched to its own request', async () => {
  const c = await connect(port)
  await c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n' +
    'POST /ok HTTP/1.1\r\nHost: x\r\nExpect: coffee\r\nContent-Length: 0\r\n\r\n' +
    'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n')
  const text = await c.read(t => statusesOf(t).length === 3 && t.endsWith('}'))
  c.close()
  assert.deepEqual(statusesOf(text), [200, 417, 200], text)
  await sleep(20)
  const counted = await requests()
  assert.equal(counted.get(label('GET', '/ok', '200')), 2, JSON.stringify([...counted]))
  assert.equal(counted.get(label('POST', '(unmatched)', '417')), 1, JSON.stringify([...counted]))
  assert.equal(total(counted), 3, JSON.stringify([...counted]))
})

test('pipelined behind a slow response: an answer Node gave at once waits for the socket as a pipelined gap, not as its write', async () => {
  const c = await connect(port)
  // The second request has no Host: Node answers 400 as soon as it is parsed, but HTTP/1.1 answers in
  // order, so the 400 is held back until /slow's response has finished (≈ 100 ms).
  await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\n\r\n')
  const text = await c.read(t => statusesOf(t).length === 2)
  c.close()
  assert.deepEqual(statusesOf(text), [200, 400], text)
  await sleep(20)
  const at = 'method="GET",route="(unmatched)"'
  const stageSum = await samples('journey_stage_duration_seconds_sum')
  const gapSum = await samples('journey_gap_duration_seconds_sum')
  const write = stageSum.get(`stage="write",${at}`)!
  const pipelined = gapSum.get(`gap="pipelined",${at}`)!
  assert.ok(write < 0.02, `the 400's write: ${write} s`)
  assert.ok(pipelined > 0.08 && pipelined < 0.5, `its wait for /slow's response: ${pipelined} s`)
  // The books still balance: stages from read on plus the server's gaps are the request's duration.
  let stages = 0
  for (const [k, v] of stageSum) if (k.endsWith(at)) stages += v
  const hooks = gapSum.get(`gap="hooks",${at}`) ?? 0
  const duration = (await samples('http_server_request_duration_seconds_sum')).get(label('GET', '(unmatched)', '400'))!
  assert.ok(Math.abs(stages + hooks + pipelined - duration) < 1e-9, `${stages} + ${hooks} + ${pipelined} vs ${duration}`)
})

test("Node's 503 past maxRequestsPerSocket is counted and kept as an error, its trace saying what was seen", async () => {
  app.server.maxRequestsPerSocket = 2
  try {
    const c = await connect(port)
    await c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3))
    const text = await c.read(t => statusesOf(t).length === 3)
    c.close()
    assert.match(text, /HTTP\/1\.1 503/)
    await sleep(20)
    assert.equal((await requests()).get(label('GET', '(unmatched)', '503')), 1)
    const [root] = roots(exporter.getFinishedSpans())
    assert.ok(root !== undefined, 'the 503 is kept by the error rule')
    assert.equal(root.name, 'GET')
    assert.equal(root.attributes['journey.before_hooks'], true)
    assert.equal(root.attributes['http.response.status_code'], 503)
    assert.deepEqual(stageNames(waterfall(exporter.getFinishedSpans(), root)), ['read', 'parse', 'write'])
  } finally {
    app.server.maxRequestsPerSocket = 0
  }
})

test('a CONNECT nobody handles is closed by Node: counted as cut off; one the app handles is not a request', async () => {
  assert.equal(await exchange('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'), '')
  assert.equal((await requests()).get('http_request_method="CONNECT",http_route="(unmatched)",error_type="aborted",url_scheme="http",network_protocol_version="1.1"'), 1)
  const [root] = roots(exporter.getFinishedSpans())
  assert.equal(root?.attributes['journey.aborted'], true)
  assert.equal(root?.attributes['journey.aborted_by'], 'server')
  assert.equal(root?.attributes['journey.before_hooks'], true)
  // It ends where Node refused it, after parse: the wait for the socket's close is nobody's hooks.
  const w = waterfall(exporter.getFinishedSpans(), root!)
  assert.deepEqual(stageNames(w), ['accept', 'read', 'parse'])
  assert.deepEqual(w.stages.at(-1)!.endTime, root!.endTime, 'the request ends with its parse')
  const at = 'method="CONNECT",route="(unmatched)"'
  assert.equal((await samples('journey_gap_duration_seconds_sum')).get(`gap="hooks",${at}`), 0, 'no hooks gap')
  const closed = await samples('journey_connections_closed_total')
  assert.equal(closed.get('listener="http",by="server"'), 1, JSON.stringify([...closed]))

  registry.resetMetrics()
  const tunnel = (_req: unknown, socket: import('node:stream').Duplex): void => { socket.end('HTTP/1.1 200 Connection Established\r\n\r\n') }
  app.server.on('connect', tunnel)
  try {
    assert.equal(statusOf(await exchange('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')), 200)
    assert.equal(total(await requests()), 0, 'the connection left HTTP: no request, and nothing cut off')
  } finally {
    app.server.off('connect', tunnel)
  }
})

test('a request Fastify sees late (its server handler deferred it) is one record, with its read and parse', async () => {
  const reg = new Registry()
  const late = createJourney({ registry: reg })
  const deferring = Fastify({
    serverFactory: (handler) => late.serverFactory()((req, res) => { setImmediate(() => handler(req, res)) })
  })
  await deferring.register(late.plugin)
  deferring.get('/ok', async () => ({ ok: true }))
  await deferring.listen({ port: 0, host: '127.0.0.1' })
  try {
    const c = await connect((deferring.server.address() as { port: number }).port)
    await c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.equal(countResponses(await c.read()), 2)
    await sleep(20)
    const text = await reg.metrics()
    assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/ok",http_response_status_code="200",url_scheme="http",network_protocol_version="1\.1"\} 2/)
    assert.doesNotMatch(text, /\(unmatched\)|error_type=/, 'no second record for the same request')
    assert.match(text, /journey_stage_duration_seconds_count\{stage="read",method="GET",route="\/ok"\} 2/)
    assert.match(text, /journey_stage_duration_seconds_count\{stage="parse",method="GET",route="\/ok"\} 2/)
  } finally {
    await deferring.close()
    late.close()
  }
})

test("Fastify's 503 while closing reaches no hook and is counted", async () => {
  const reg = new Registry()
  const closing = createJourney({ registry: reg })
  const server = Fastify({ serverFactory: closing.serverFactory() })
  await server.register(closing.plugin)
  server.get('/slow', async () => { await sleep(200); return { ok: true } })
  server.get('/ok', async () => ({ ok: true }))
  await server.listen({ port: 0, host: '127.0.0.1' })
  const c = await connect((server.server.address() as { port: number }).port)
  await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await sleep(50)
  const closed = server.close()
  await sleep(20)
  await c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n')
  const text = await c.read(t => statusesOf(t).length === 2 && t.endsWith('}'))
  c.close()
  await closed
  assert.deepEqual(statusesOf(text), [200, 503], text)
  const metrics = await reg.metrics()
  closing.close()
  assert.match(metrics, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\(unmatched\)",http_response_status_code="503",error_type="503",url_scheme="http",network_protocol_version="1\.1"\} 1/)
  assert.match(metrics, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/slow",http_response_status_code="200",url_scheme="http",network_protocol_version="1\.1"\} 1/)
})

test('head sampling reaches answers given before any hook, and a request claimed late is decided once', async () => {
  // 100 % sampled, with the project's export pipeline (it holds room for each sampled request while it runs).
  const reg = new Registry()
  const spans = new InMemorySpanExporter()
  const pipeline = countedBatchProcessor({ exporter: spans, registry: reg, maxQueueSize: 64, maxExportBatchSize: 64, scheduledDelayMillis: 10, exportTimeoutMillis: 1000, maxConcurrentExports: 1 })
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [pipeline] })
  const provider = new TracerProvider(tracing.sdkOptions)
  const sampled = createJourney({ registry: reg, tracing, tracer: provider.getTracer('before-hooks') })
  // Its server handler defers Fastify, so the journey's hook sees requests late and claims their records.
  const server = Fastify({ serverFactory: (handler) => sampled.serverFactory()((req, res) => { setImmediate(() => handler(req, res)) }) })
  await server.register(sampled.plugin)
  server.get('/ok', async () => ({ ok: true }))
  await server.listen({ port: 0, host: '127.0.0.1' })
  const serverPort = (server.server.address() as { port: number }).port
  try {
    const c = await connect(serverPort)
    await c.write('GET /ok HTTP/1.1\r\n\r\n') // no Host: Node answers 400 before Fastify sees it
    assert.equal(statusOf(await c.read(undefined, 3000)), 400)
    const d = await connect(serverPort)
    await d.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert.equal(countResponses(await d.read()), 2)
    await sleep(20)
    await provider.forceFlush()

    const all = spans.getFinishedSpans()
    const unmatched = roots(all).filter(r => r.attributes['journey.before_hooks'] === true)
    assert.equal(unmatched.length, 1, 'the 400 Node gave is traced: every request is head-sampled')
    assert.equal(unmatched[0]!.attributes['journey.sampling.rule'], 'head')
    assert.equal(unmatched[0]!.attributes['http.response.status_code'], 400)
    assert.deepEqual(stageNames(waterfall(all, unmatched[0]!)), ['accept', 'read', 'parse', 'write'])
    assert.equal(roots(all, '/ok').length, 2, 'one request span per claimed request')
    // Room held for a sampled request is given back when it ends; deciding a claimed request twice held it twice.
    assert.match(await reg.metrics(), /^journey_spans_reserved 0$/m)
    assert.match(await reg.metrics(), /^journey_spans_dropped_total 0$/m)
  } finally {
    await server.close()
    sampled.close()
    await provider.shutdown()
  }
})
