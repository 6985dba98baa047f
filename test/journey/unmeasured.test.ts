// What a process cannot measure is said once, as a warning with its code, when the plugin is registered:
// read and parse on a Node without the parser internals they rely on, and on Linux the kernel's part without
// the TCP_INFO addon (an install that ran no build script: pnpm's default, `--ignore-scripts`). Each case runs
// a real app in a child process: the plugin folder copied as a team may copy it (where no addon was built),
// and a Node made to lack the internals by a preload that deletes them, as a future Node might.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'
import { tcpInfoUnavailable } from '../../src/journey/tcp-info.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
// Inside the checkout (test-artifacts/ is ignored by git), so the copy finds this project's node_modules.
mkdirSync(join(root, 'test-artifacts'), { recursive: true })
const dir = mkdtempSync(join(root, 'test-artifacts', 'unmeasured-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// Serves one request on a new connection and prints what the journey made of it, and which warnings came.
const APP = `
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { createJourney, journeyTracing, summarize } from './journey/index.ts'
const said = []
process.on('warning', (w) => { if (w.code?.startsWith('REQUEST_JOURNEY')) said.push(w.code) })
const registry = new Registry()
const exporter = new InMemorySpanExporter()
const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter })] })
const provider = new TracerProvider(tracing.sdkOptions)
const journey = createJourney({ registry, tracing, tracer: provider.getTracer('unmeasured') })
const app = Fastify()
await app.register(journey.plugin)
let summary
app.addHook('onResponse', async (request) => { setImmediate(() => { summary = summarize(request.journey) }) })
app.get('/', async () => ({ ok: true }))
await app.listen({ port: 0, host: '127.0.0.1' })
const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/', { headers: { connection: 'close' } })
await r.text()
await new Promise(resolve => setTimeout(resolve, 50))
const metrics = await registry.metrics()
await app.close()
const span = exporter.getFinishedSpans().find(s => s.name === 'GET /')
console.log(JSON.stringify({
  status: r.status, said, summary, limitation: journey.limitation ?? null, kernelLimitation: journey.kernelLimitation ?? null,
  readSeen: span?.attributes['journey.read.seen'] ?? null,
  series: metrics.split('\\n').filter(l => l.startsWith('journey_stage_duration_seconds_count')).map(l => /stage="(\\w+)"/.exec(l)[1])
}))
`
// As a future Node might be: _http_common's HTTPParser without the slots the parser observer wraps.
const NO_PARSER_SLOTS = 'data:text/javascript,import { createRequire } from "node:module"; delete createRequire("/")("_http_common").HTTPParser.kOnMessageBegin'

interface Outcome {
  status: number, said: string[], series: string[], limitation: string | null, kernelLimitation: string | null, readSeen: boolean | null,
  summary: { ms: number, stages: Record<string, number>, hooksMs: number }
}
async function serve (args: string[], cwd = dir): Promise<{ out: Outcome, stderr: string }> {
  const { stdout, stderr } = await run(process.execPath, [...args, 'app.ts'], { cwd, timeout: 30_000 })
  return { out: JSON.parse(stdout.trim().split('\n').at(-1)!) as Outcome, stderr }
}

cpSync(join(root, 'src/journey'), join(dir, 'journey'), { recursive: true })
writeFileSync(join(dir, 'app.ts'), APP)

test('on Linux, a copy of the plugin without its built addon says so once, with how to build it or go without; everything else is measured', { skip: process.platform !== 'linux' && 'the addon is for Linux only' }, async () => {
  const { out, stderr } = await serve([])
  assert.equal(out.status, 200)
  assert.deepEqual(out.said, ['REQUEST_JOURNEY_NO_TCP_INFO'])
  assert.match(stderr, /\[REQUEST_JOURNEY_NO_TCP_INFO\] Warning: the TCP_INFO addon \(native\/\) is not built \(loading it: no build and no prebuilt addon for platform=linux arch=\w+ .*libc=glibc node=/)
  assert.match(stderr, /npm rebuild fastify-request-journey.*pnpm approve-builds.*--disable-warning=REQUEST_JOURNEY_NO_TCP_INFO/)
  assert.match(out.kernelLimitation ?? '', /TCP_INFO addon is not built/, 'journey.kernelLimitation says it too')
  assert.deepEqual(out.series, ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'])
  assert.equal(out.readSeen, null, 'read is seen: the span does not say otherwise')
  // Going without, knowingly: Node's own switch silences that one code.
  const quiet = await serve(['--disable-warning=REQUEST_JOURNEY_NO_TCP_INFO'])
  assert.doesNotMatch(quiet.stderr, /REQUEST_JOURNEY/)
})

// An addon file that is there but does not load — built for another arch or libc, copied from another
// machine's image, damaged — is not "not built": building is not the answer, so the warning says what it is.
test('on Linux, an addon that is there but does not load says so, with the loader\'s reason, not "not built"', { skip: process.platform !== 'linux' && 'the addon is for Linux only' }, async () => {
  const copy = join(dir, 'elsewhere') // its journey/ finds ../../native: dir/native
  cpSync(join(dir, 'journey'), join(copy, 'journey'), { recursive: true })
  writeFileSync(join(copy, 'app.ts'), APP)
  mkdirSync(join(dir, 'native/build/Release'), { recursive: true })
  writeFileSync(join(dir, 'native/build/Release/tcp_info.node'), 'not an ELF file\n')
  try {
    const { out, stderr } = await serve([], copy)
    assert.equal(out.status, 200)
    assert.deepEqual(out.said, ['REQUEST_JOURNEY_NO_TCP_INFO'])
    assert.match(stderr, /Warning: the TCP_INFO addon \(native\/\) does not load here \(loading it: ERR_DLOPEN_FAILED: .+\/native\/build\/Release\/tcp_info\.node: (invalid ELF header|file too short)\)/)
    assert.match(out.kernelLimitation ?? '', /TCP_INFO addon does not load here \(ERR_DLOPEN_FAILED/)
    assert.deepEqual(out.series, ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'])
  } finally {
    rmSync(join(dir, 'native'), { recursive: true, force: true })
  }
})

// The plugin's folder copied into an app that lacks its one native-loading dependency: what is missing is
// node-gyp-build (the install the warning names), not a build. The app's other packages are this
// checkout's, linked; node-gyp-build alone is left out.
test('on Linux, a copy of the plugin in an app without node-gyp-build says that is what it lacks', { skip: process.platform !== 'linux' && 'the addon is for Linux only' }, async () => {
  const app = mkdtempSync(join(tmpdir(), 'journey-without-node-gyp-build-'))
  try {
    mkdirSync(join(app, 'node_modules'))
    for (const name of readdirSync(join(root, 'node_modules'))) {
      if (name !== 'node-gyp-build' && !name.startsWith('.')) symlinkSync(join(root, 'node_modules', name), join(app, 'node_modules', name))
    }
    cpSync(join(dir, 'journey'), join(app, 'journey'), { recursive: true })
    writeFileSync(join(app, 'app.ts'), APP)
    const { out, stderr } = await serve([], app)
    assert.equal(out.status, 200)
    assert.deepEqual(out.said, ['REQUEST_JOURNEY_NO_TCP_INFO'])
    assert.match(stderr, /Warning: the TCP_INFO addon \(native\/\) is not looked for: node-gyp-build, which finds it, is not installed beside the plugin \(npm install node-gyp-build\) \(loading it: MODULE_NOT_FOUND: Cannot find module 'node-gyp-build'/)
    assert.deepEqual(out.series, ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'])
  } finally {
    rmSync(app, { recursive: true, force: true })
  }
})

test('a Node without the parser internals says so once; its requests have no read or parse, and their stages and hooks still sum to the duration', async () => {
  const { out, stderr } = await serve(['--disable-warning=REQUEST_JOURNEY_NO_TCP_INFO', '--import', NO_PARSER_SLOTS])
  assert.equal(out.status, 200)
  // --disable-warning keeps a warning off stderr, not from 'warning' listeners: this copy has no addon either.
  assert.deepEqual(out.said, ['REQUEST_JOURNEY_PARSER_UNSEEN', 'REQUEST_JOURNEY_NO_TCP_INFO'].slice(0, process.platform === 'linux' ? 2 : 1))
  assert.doesNotMatch(stderr, /REQUEST_JOURNEY_NO_TCP_INFO/)
  assert.match(stderr, /\[REQUEST_JOURNEY_PARSER_UNSEEN\] Warning: Node v[\d.]+ has no kOnMessageBegin and kOnHeadersComplete slots/)
  assert.match(out.limitation ?? '', /read and parse are not measured/, 'journey.limitation says it too')
  assert.deepEqual(out.series, ['accept', 'decode', 'handler', 'serialize', 'write'])
  assert.equal(out.readSeen, false, 'the request span says read was not seen, as on HTTP/2')
  const s = out.summary
  assert.deepEqual(Object.keys(s.stages), ['accept', 'decode', 'handler', 'serialize', 'write'])
  // accept is the connection's, before the request; the wait from it to the request object is no hook's.
  const inRequest = Object.entries(s.stages).filter(([stage]) => stage !== 'accept').reduce((a, [, ms]) => a + ms, 0)
  assert.ok(Math.abs(inRequest + s.hooksMs - s.ms) < 0.01, JSON.stringify(s))
})

test('here (Node 24 with the addon npm ci built) neither is said', async () => {
  const said: string[] = []
  const listen = (w: Error & { code?: string }): void => { if (w.code?.startsWith('REQUEST_JOURNEY') === true) said.push(w.code) }
  process.on('warning', listen)
  const journey = createJourney({ registry: new Registry() })
  const app = Fastify()
  await app.register(journey.plugin)
  await app.ready()
  await new Promise(resolve => setImmediate(resolve))
  process.off('warning', listen)
  await app.close()
  journey.close()
  const expected = tcpInfoUnavailable !== undefined && process.env.CI !== 'true' && process.platform === 'linux' ? ['REQUEST_JOURNEY_NO_TCP_INFO'] : []
  assert.deepEqual(said, expected)
})
