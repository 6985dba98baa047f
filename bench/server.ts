// One benchmark variant: Fastify with the demo routes and one way of instrumenting them, on HTTP and HTTPS —
// or, with BENCH_HTTP2=true, on HTTP/2 over TLS alone (Fastify's `http2: true`, on HTTPS_PORT).
// Every variant is the same app built the same way, so ratios isolate the instrumentation's cost.
//
//   BENCH_VARIANT=journey-metrics HTTP_PORT=3100 HTTPS_PORT=3543 node bench/server.ts
//   BENCH_HTTP2=true BENCH_VARIANT=journey-metrics HTTPS_PORT=3543 node bench/server.ts
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { FastifyInstance, FastifyServerFactory } from 'fastify'
import { loadTlsMaterial } from '../src/tls-cert.ts'

import { HTTP2_VARIANTS, VARIANTS, type VariantName } from './variants.ts'
import { reportTickStateOnSignal } from './tick-state.ts'
import { keepTickShape } from '../src/tick-shape.ts'

// Every server, variant and twin alike, as src/main.ts does: otherwise V8 leaves nextTick ≈ 2 µs slower for
// good in some processes at random (src/tick-shape.ts). It is Node's, not an instrumentation's: bare servers
// met it too, instrumented ones more often. tick-state.ts still reads every server's state.
keepTickShape()

const variant = (process.env.BENCH_VARIANT ?? 'bare') as VariantName
if (!VARIANTS.includes(variant)) throw new Error(`BENCH_VARIANT must be one of ${VARIANTS.join(', ')}`)
const http2 = process.env.BENCH_HTTP2 === 'true'
if (http2 && !HTTP2_VARIANTS.includes(variant)) throw new Error(`BENCH_HTTP2: ${variant} is not measured on HTTP/2 (variants.ts says why); one of ${HTTP2_VARIANTS.join(', ')}`)
const httpPort = Number(process.env.HTTP_PORT ?? 3100)
const httpsPort = Number(process.env.HTTPS_PORT ?? 3543)
const tls = await loadTlsMaterial(undefined, undefined)

// The usual setup must start before Fastify is loaded: its http instrumentation patches `http` when
// Fastify (CommonJS) requires it, and @fastify/otel hooks Fastify's initialization.
if (variant === 'usual-100pct' || variant === 'usual-10pct') {
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http')
  const { FastifyOtelInstrumentation } = await import('@fastify/otel')
  const { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, AlwaysOnSampler } = await import('@opentelemetry/sdk-trace')
  // The same encoding the journey variants use (OTLP's default, http/protobuf), so the exporters cost alike.
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-proto')
  new NodeSDK({
    serviceName: 'bench',
    sampler: new ParentBasedSampler({ root: variant === 'usual-10pct' ? new TraceIdRatioBasedSampler(0.1) : new AlwaysOnSampler() }),
    // Its processor takes OTEL_BSP_SCHEDULE_DELAY as the journey's does (bench/run.ts sets it for both).
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: Number(process.env.OTEL_BSP_SCHEDULE_DELAY ?? 5000) })],
    instrumentations: [new HttpInstrumentation(), new FastifyOtelInstrumentation({ registerOnInitialization: true }) as never],
    metricReaders: [],
    logRecordProcessors: []
  }).start()
}

const { default: Fastify } = await import('fastify')
const { default: pino } = await import('pino')
const { demoApp } = await import('../src/app/index.ts')
const { Registry, Histogram, collectDefaultMetrics } = await import('prom-client')

let https: ReturnType<typeof createHttpsServer> | undefined
let factory: FastifyServerFactory = (handler) => {
  https = createHttpsServer({ key: tls.key, cert: tls.cert }, handler)
  return createHttpServer(handler)
}
let plugin: ((app: FastifyInstance) => Promise<void>) | undefined
let listenHttps = (): ReturnType<typeof createHttpsServer> => https!

if (variant.startsWith('journey')) {
  const { createJourney } = await import('../src/journey/index.ts')
  const { startTelemetry } = await import('../src/telemetry.ts')
  const { exportThreadFromEnv } = await import('../src/config.ts')
  const sampled = variant === 'journey-1pct' || variant === 'journey-100pct'
  const telemetry = await startTelemetry('bench', pino({ level: 'warn' }), {
    // As the server reads it, so bench:ab can compare the two export threads (B_ENV).
    exportThread: exportThreadFromEnv(process.env),
    env: {
      ...process.env,
      OTEL_TRACES_EXPORTER: sampled ? 'otlp' : 'none',
      OTEL_TRACES_SAMPLER: variant === 'journey-1pct' ? 'parentbased_traceidratio' : 'parentbased_always_on',
      OTEL_TRACES_SAMPLER_ARG: variant === 'journey-1pct' ? '0.01' : '1'
    }
  })
  const journey = createJourney({
    registry: telemetry.registry,
    tracing: telemetry.tracing,
    precision: variant === 'journey-fine' ? 'fine' : 'default',
    // The tail rules as the demo reads them (docs/configuration.md): bench:ab compares them on the fail route.
    keepErrors: process.env.JOURNEY_KEEP_ERRORS !== 'false',
    keepLimitPerSecond: process.env.JOURNEY_KEEP_PER_SECOND === undefined ? undefined : Number(process.env.JOURNEY_KEEP_PER_SECOND),
    // As the server reads it (off unless set), so bench:ab can measure the header: B_ENV='{"JOURNEY_SERVER_TIMING":"true"}'.
    serverTiming: process.env.JOURNEY_SERVER_TIMING === 'true'
  })
  factory = (handler) => {
    https = journey.observeServer(createHttpsServer({ key: tls.key, cert: tls.cert }, handler), 'https')
    return journey.observeServer(createHttpServer(handler), 'http')
  }
  listenHttps = () => journey.listenerFor(https!) as ReturnType<typeof createHttpsServer>
  plugin = async (app) => { await app.register(journey.plugin) }
} else if (variant === 'fastify-metrics') {
  const { default: fastifyMetrics } = await import('fastify-metrics')
  plugin = async (app) => { await app.register(fastifyMetrics as never, { endpoint: '/metrics' }) }
} else if (variant === 'prom-client-histogram') {
  // What many teams write by hand: one histogram observed in onResponse, plus the default metrics.
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const h = new Histogram({ name: 'http_request_duration_seconds', help: 'x', labelNames: ['method', 'route', 'status'] as const, registers: [registry] })
  plugin = async (app) => {
    app.addHook('onResponse', async (request, reply) => {
      h.observe({ method: request.method, route: request.routeOptions.url ?? '', status: reply.statusCode }, reply.elapsedTime / 1000)
    })
  }
}

const ajv = { customOptions: { allowUnionTypes: true } }
// HTTP/2: Fastify builds the server itself, and the journey's plugin observes it (docs/plugin.md). HTTP/1.1
// clients are let in only so that starting servers can be asked whether they answer (servers.ts).
// (Typed as the HTTP/1 app: the plugins and routes below take either.)
const app: FastifyInstance = http2
  ? Fastify({ logger: false, http2: true, https: { key: tls.key, cert: tls.cert, allowHTTP1: true }, ajv }) as unknown as FastifyInstance
  : Fastify({ logger: false, serverFactory: factory, ajv })
if (plugin !== undefined) await plugin(app)
await app.register(demoApp, { computeMaxMs: 1000, ioMaxMs: 1000, downloadMaxKb: 1024, workerThreads: 1 })
// The fail route (servers.ts): a storm's request, a database down — thrown at once, a 500 with its stack.
app.get('/fail', async () => { throw new Error('the database is down') })
if (http2) {
  await app.listen({ port: httpsPort, host: '127.0.0.1' })
} else {
  await app.listen({ port: httpPort, host: '127.0.0.1' })
  await new Promise<void>(resolve => listenHttps().listen(httpsPort, '127.0.0.1', resolve))
}
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
// bench/run.ts asks each server, at the end of its round, whether V8 left it in a slow state (tick-state.ts).
reportTickStateOnSignal()
