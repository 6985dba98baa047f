// Set-up mistakes a team adding the plugin to its own app can make, which would otherwise only show as
// numbers or traces that are missing or misplaced: routes added before the plugin (their handler is not
// wrapped), a server the journey does not observe (not the app's own, nor built by its serverFactory), @fastify/otel registered after the
// journey (two traces per request), an async onRequest hook registered before it (its time lands in parse),
// an observed server whose app never registered the plugin (only connections measured).
// Each is said once, as a Node warning with a code.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { ProxyTracerProvider, type Tracer } from '@opentelemetry/api'
import { AlwaysOffSampler, AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { journeyWarnings } from '../helpers/warnings.ts'

const warnings = journeyWarnings()
const apps: FastifyInstance[] = []
after(async () => { for (const app of apps) await app.close() })

async function send (app: FastifyInstance, path: string, method: 'GET' | 'HEAD' = 'GET'): Promise<number> {
  const r = await request(`http://127.0.0.1:${(app.server.address() as { port: number }).port}${path}`, { method })
  await r.body.text()
  return r.statusCode
}

// First in this file: it needs a process in which no journey plugin is registered yet.
test('an observed server without the journey plugin is said once: connections are measured, requests cannot be', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  apps.push(app)
  app.get('/x', async () => 'x')
  await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(await send(app, '/x'), 200)
  assert.equal(await send(app, '/x'), 200)
  assert.deepEqual(warnings.filter(w => w.code === 'REQUEST_JOURNEY_NO_PLUGIN').length, 1)
  assert.match(warnings.find(w => w.code === 'REQUEST_JOURNEY_NO_PLUGIN')!.message, /register\(journey\.plugin\)/)
  const text = await registry.metrics()
  assert.match(text, /journey_connections_accepted_total\{listener="http"\} [1-9]/)
  assert.doesNotMatch(text, /http_server_request_duration_seconds_count/)
  warnings.length = 0
})

test('a route added before the plugin is named once; routes after it (and their HEAD twins, and 404s) are not', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  apps.push(app)
  app.get('/early', async () => 'early')
  await app.register(journey.plugin)
  app.get('/late', async () => 'late')
  await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(await send(app, '/early'), 200)
  assert.equal(await send(app, '/early'), 200)
  assert.equal(await send(app, '/late'), 200)
  assert.equal(await send(app, '/late', 'HEAD'), 200)
  assert.equal(await send(app, '/nope'), 404)
  await sleep(20)
  assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_UNWRAPPED_ROUTE'])
  assert.match(warnings[0]!.message, /route GET \/early was added before the journey plugin/)
  const text = await registry.metrics()
  assert.doesNotMatch(text, /stage="handler",method="GET",route="\/early"/, 'its handler stage is indeed missing')
  assert.match(text, /stage="handler",method="GET",route="\/late"\} 1/)
  warnings.length = 0
})

// Fastify runs onRoute hooks when a route is added, and a registered plugin loads later (at the next
// await, after(), or ready): so `app.register(plugin)` not awaited, as CommonJS apps often write it, is
// "before" for a route added right after it, and fine for routes in a plugin registered after it.
test('a route added right after a register() not awaited is named, with the way out; routes in a plugin after it are measured', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  apps.push(app)
  void app.register(journey.plugin)
  app.get('/sync', async () => 'sync')
  void app.register(async (instance) => { instance.get('/in-plugin', async () => 'in plugin') })
  await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(await send(app, '/sync'), 200)
  assert.equal(await send(app, '/in-plugin'), 200)
  await sleep(20)
  assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_UNWRAPPED_ROUTE'])
  assert.match(warnings[0]!.message, /route GET \/sync was added before the journey plugin had loaded/)
  assert.match(warnings[0]!.message, /await app\.register\(journey\.plugin\)/)
  const text = await registry.metrics()
  assert.doesNotMatch(text, /stage="handler",method="GET",route="\/sync"/)
  assert.match(text, /stage="handler",method="GET",route="\/in-plugin"\} 1/)
  warnings.length = 0
})

test('requests on a server the journey does not observe are said once; the app\'s own server and inject() are not', async () => {
  const journey = createJourney({ registry: new Registry() })
  const app = Fastify() // its own server: the plugin observes it
  apps.push(app)
  await app.register(journey.plugin)
  app.get('/', async () => 'hi')
  await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal((await app.inject('/')).statusCode, 200)
  assert.equal(await send(app, '/'), 200)
  await sleep(20)
  assert.equal(warnings.length, 0, 'inject() requests have no real connection to observe, and the app\'s server is observed')
  // A second server feeding the same app, which nobody observes.
  const other = createServer((req, res) => { app.routing(req, res) })
  await new Promise<void>(resolve => other.listen(0, '127.0.0.1', resolve))
  after(() => { other.close() })
  for (let i = 0; i < 2; i++) {
    const r = await request(`http://127.0.0.1:${(other.address() as { port: number }).port}/`)
    await r.body.text()
    assert.equal(r.statusCode, 200)
  }
  await sleep(20)
  assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_UNOBSERVED'])
  assert.match(warnings[0]!.message, /journey\.observeServer\(\)/)
})

test('@fastify/otel registered after a tracing journey is said once; registered before it, or next to a metrics-only journey, it is not', async () => {
  warnings.length = 0
  const cases: Array<{ traced: boolean, otelFirst: boolean }> = [
    { traced: true, otelFirst: false }, { traced: true, otelFirst: true }, { traced: false, otelFirst: false }
  ]
  const said: string[][] = []
  for (const c of cases) {
    const journey = createJourney({ registry: new Registry(), tracing: c.traced ? journeyTracing({ spanProcessors: [] }) : undefined })
    const app = Fastify({ serverFactory: journey.serverFactory() })
    apps.push(app)
    const otel = new FastifyOtelInstrumentation().plugin()
    if (c.otelFirst) await app.register(otel)
    await app.register(journey.plugin)
    if (!c.otelFirst) await app.register(otel)
    app.get('/', async () => 'hi')
    await app.ready()
    await sleep(20)
    said.push(warnings.map(w => w.code ?? ''))
    warnings.length = 0
    journey.close()
  }
  assert.deepEqual(said, [['REQUEST_JOURNEY_PLUGIN_ORDER'], [], []])
})

test('an async onRequest hook registered before the journey is said once (its time lands in parse); the requests are still measured once', async () => {
  warnings.length = 0
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  apps.push(app)
  app.addHook('onRequest', async (request, reply) => { if (request.headers.authorization === undefined) return await reply.code(401).send({ error: 'who are you' }) })
  await app.register(journey.plugin)
  app.get('/secret', async () => 'secret')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  for (const headers of [{ authorization: 'x' }, { authorization: 'x' }, {}]) {
    const r = await request(`http://127.0.0.1:${port}/secret`, { headers })
    await r.body.text()
  }
  await sleep(20)
  assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_LATE_HOOK'])
  const text = await registry.metrics()
  assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/secret",http_response_status_code="200",url_scheme="http",network_protocol_version="1\.1"\} 2/)
  assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\(unmatched\)",http_response_status_code="401",url_scheme="http",network_protocol_version="1\.1"\} 1/)
  warnings.length = 0
  journey.close()
})

test('tracing without a tracer that records the journey\'s spans (no SDK started, or another sampler) is said once, as is one with ids of its own; a right set-up says nothing', async () => {
  const cases: Array<{ name: string, tracer: (tracing: ReturnType<typeof journeyTracing>) => Tracer, warns?: 'REQUEST_JOURNEY_NOT_RECORDED' | 'REQUEST_JOURNEY_NO_SDK_OPTIONS', sdkDisabled?: string }> = [
    // What trace.getTracer() hands out while no provider is registered: spans that record nothing.
    { name: 'no provider', tracer: () => new ProxyTracerProvider().getTracer('app'), warns: 'REQUEST_JOURNEY_NOT_RECORDED' },
    // The same because the SDK was turned off on purpose (NodeSDK's start() then registers nothing): no
    // span, as asked, and no advice to start it. Written as the SDK reads it: trimmed, any case.
    { name: 'no provider, OTEL_SDK_DISABLED=true', tracer: () => new ProxyTracerProvider().getTracer('app'), sdkDisabled: ' True ' },
    { name: 'a provider with a sampler of its own', tracer: () => new TracerProvider({ sampler: new AlwaysOffSampler() }).getTracer('app'), warns: 'REQUEST_JOURNEY_NOT_RECORDED' },
    // An SDK's defaults (what the auto-instrumentations' register starts): records everything, its own ids.
    { name: 'a provider with its defaults', tracer: (tracing) => new TracerProvider({ spanProcessors: tracing.spanProcessors }).getTracer('app'), warns: 'REQUEST_JOURNEY_NO_SDK_OPTIONS' },
    { name: 'the journey\'s sdkOptions', tracer: (tracing) => new TracerProvider(tracing.sdkOptions).getTracer('app') }
  ]
  for (const c of cases) {
    warnings.length = 0
    if (c.sdkDisabled === undefined) delete process.env.OTEL_SDK_DISABLED
    else process.env.OTEL_SDK_DISABLED = c.sdkDisabled
    const exporter = new InMemorySpanExporter()
    const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter })] })
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE) // exemplars
    const journey = createJourney({ registry, tracing, tracer: c.tracer(tracing), serverTiming: true })
    const app = Fastify({ serverFactory: journey.serverFactory() })
    apps.push(app)
    await app.register(journey.plugin)
    app.get('/', async () => 'hi')
    await app.listen({ port: 0, host: '127.0.0.1' })
    const told: string[] = []
    for (let i = 0; i < 3; i++) {
      const r = await request(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
      await r.body.text()
      assert.equal(r.statusCode, 200)
      told.push(/traceparent;desc="00-([0-9a-f]{32})-/.exec(String(r.headers['server-timing']))?.[1] ?? '')
    }
    await sleep(20)
    const said = warnings.filter(w => w.code === 'REQUEST_JOURNEY_NOT_RECORDED' || w.code === 'REQUEST_JOURNEY_NO_SDK_OPTIONS')
    const exported = new Set(exporter.getFinishedSpans().map(s => s.spanContext().traceId))
    // Exemplars name exported traces only: before, a span that recorded nothing gave every histogram
    // exemplars of a no-op tracer's ids, all zeros — dots in Grafana leading to no trace.
    const exemplars = new Set([...(await registry.metrics()).matchAll(/# \{traceId="([0-9a-f]{32})"/g)].map(m => m[1]))
    assert.deepEqual([...exemplars].filter(id => !exported.has(id!)), [], `${c.name}: exemplars name exported traces only`)
    assert.equal(exemplars.size > 0, exported.size > 0, `${c.name}: exemplars when traces are exported`)
    if (c.warns !== undefined) {
      assert.deepEqual(said.map(w => w.code), [c.warns], `${c.name}: said once`)
      assert.match(said[0]!.message, /sdkOptions/)
      if (c.warns === 'REQUEST_JOURNEY_NOT_RECORDED') assert.equal(exported.size, 0, `${c.name}: indeed no span`)
      else assert.ok(exported.size === 3 && told.every(id => !exported.has(id)), `${c.name}: indeed spans under other trace ids than the client was told`)
    } else if (c.sdkDisabled !== undefined) {
      assert.deepEqual(said, [], c.name)
      assert.equal(exported.size, 0, `${c.name}: no span`)
    } else {
      assert.deepEqual(said, [], c.name)
      assert.deepEqual([...exported].sort(), [...told].sort(), 'the client was told the exported trace ids')
    }
    await app.close()
    journey.close()
  }
  delete process.env.OTEL_SDK_DISABLED
})

test('the plugin registered inside an encapsulated context (a prefix) is said once: routes outside it are not measured as theirs', async () => {
  warnings.length = 0
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify()
  apps.push(app)
  await app.register(async (api) => {
    await api.register(journey.plugin)
    api.get('/x', async () => 'x')
  }, { prefix: '/api' })
  app.get('/health', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(await send(app, '/api/x'), 200)
  assert.equal(await send(app, '/health'), 200)
  const said = warnings.filter(w => w.code === 'REQUEST_JOURNEY_ENCAPSULATED')
  assert.equal(said.length, 1)
  assert.match(said[0]!.message, /\/api/)
  // Registered at the root, or through a plugin that does not encapsulate (fastify-plugin), nothing is said.
  for (const viaPlugin of [false, true]) {
    warnings.length = 0
    const j = createJourney({ registry: new Registry() })
    const root = Fastify()
    apps.push(root)
    if (viaPlugin) await root.register(fp(async (instance) => { await instance.register(j.plugin) }))
    else await root.register(j.plugin)
    root.get('/', async () => 'hi')
    await root.ready()
    assert.deepEqual(warnings.filter(w => w.code === 'REQUEST_JOURNEY_ENCAPSULATED'), [])
    j.close()
  }
  journey.close()
})

// fastify-cli's generated project: `fastify start app.js` registers app.js's export as a plugin, which
// encapsulates unless wrapped in fastify-plugin; the project's plugins/ (fp-wrapped, so in app.js's
// context) and routes/ are autoloaded inside it. Every route is measured; Fastify's default 404 handler
// belongs to the root, so a 404 reaches none of the journey's hooks. Wrapping app.js in fp, as the warning
// says, makes it whole.
test('a fastify-cli–shaped app: routes measured, a 404 without its Fastify stages and the warning; app.js wrapped in fastify-plugin: silent and whole', async () => {
  for (const wrapped of [false, true]) {
    warnings.length = 0
    const registry = new Registry()
    const journey = createJourney({ registry })
    const appJs = async (fastify: FastifyInstance): Promise<void> => {
      await fastify.register(fp(async (instance) => { await instance.register(journey.plugin) })) // plugins/journey.js
      await fastify.register(async (routes) => { routes.get('/example', async () => 'example') }) // routes/example
    }
    const app = Fastify()
    apps.push(app)
    await app.register(wrapped ? fp(appJs) : appJs)
    await app.listen({ port: 0, host: '127.0.0.1' })
    assert.equal(await send(app, '/example'), 200)
    assert.equal(await send(app, '/nope'), 404)
    await sleep(20)
    const said = warnings.filter(w => w.code === 'REQUEST_JOURNEY_ENCAPSULATED')
    const text = await registry.metrics()
    assert.match(text, /stage="handler",method="GET",route="\/example"\} 1/, 'its routes are measured either way')
    assert.match(text, /http_server_request_duration_seconds_count\{[^}]*http_route="\(unmatched\)",http_response_status_code="404"[^}]*\} 1/)
    if (wrapped) {
      assert.deepEqual(said, [])
      assert.match(text, /stage="decode",method="GET",route="\(unmatched\)"\} 1/, 'the 404 went through the journey\'s hooks')
    } else {
      assert.equal(said.length, 1)
      assert.match(said[0]!.message, /404 handler/)
      assert.match(said[0]!.message, /fastify-cli app\.js .* wrapped in fastify-plugin/)
      assert.doesNotMatch(text, /stage="decode",method="GET",route="\(unmatched\)"/, 'the 404 reached none of its hooks')
      assert.match(text, /stage="read",method="GET",route="\(unmatched\)"\} 1/, 'but its connection and parser stages are measured')
    }
    await app.close()
    journey.close()
  }
})

test('the plugin registered twice on one app, or two journeys\' plugins: the app does not start, and the error says why', async () => {
  for (const second of ['same', 'another'] as const) {
    const first = createJourney({ registry: new Registry() })
    const other = second === 'same' ? first : createJourney({ registry: new Registry() })
    const app = Fastify()
    apps.push(app)
    await app.register(first.plugin)
    await assert.rejects(async () => { await app.register(other.plugin); await app.ready() }, /already have a `journey` \(journey\.plugin registered twice, or two journeys' plugins\)/, second)
    await first.close()
    await other.close()
  }
})
