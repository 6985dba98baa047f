// docs/plugin.md's "Where the time went, in your log lines": its hook, taken from the page as it is, in an
// app with Fastify's own logger, so the recipe a team copies cannot drift from what the plugin gives it.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect as connectH2, constants as h2 } from 'node:http2'
import { connect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { InMemorySpanExporter, TracerProvider } from '@opentelemetry/sdk-trace'
import type { FastifyInstance } from 'fastify'
import { Client } from 'undici'
import type { Journey } from '../../src/journey/index.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const guide = readFileSync(join(root, 'docs/plugin.md'), 'utf8')
const section = guide.slice(guide.indexOf('## Where the time went, in your log lines'))
const hook = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? ''

// Beside the repository's node_modules, so the module resolves fastify as an app would; git- and lint-ignored.
const dir = join(root, 'test-artifacts')
const files: string[] = []
after(() => { for (const file of files) rmSync(file, { force: true }) })

interface Loaded { app: FastifyInstance, journey: Journey, provider: TracerProvider, spans: InMemorySpanExporter, lines: string[] }

/** The app: `options` are Fastify's, besides its logger. */
async function load (options = ''): Promise<Loaded> {
  // From test-artifacts/, as the file is written there (a relative path, so tsc resolves it too).
  const index = '../src/journey/index.ts'
  // Head sampling off and a 150 ms slow threshold: the slow request (200 ms) is traced only at its end, and a
  // fast one is not, even the first, cold, on a loaded CI machine (25 ms was once exceeded there).
  const header = `
import Fastify, { LogController } from 'fastify'
import { Registry } from 'prom-client'
import { AlwaysOffSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { createJourney, journeyTracing } from '${index}'
export const lines: string[] = []
export const spans = new InMemorySpanExporter()
const tracing = journeyTracing({ headSampler: new AlwaysOffSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] })
export const provider = new TracerProvider(tracing.sdkOptions)
export const journey = createJourney({ registry: new Registry(), tracing, tracer: provider.getTracer('log-line'), slowThresholdMs: 150 })
export const app = Fastify({ logger: { stream: { write: (line: string) => { lines.push(line) } } }, logController: new LogController({ disableRequestLogging: true }), ${options} })
await app.register(journey.plugin)
`
  const footer = `
app.get('/fast/:id', async () => ({ ok: true }))
app.get('/slow', async () => { await new Promise(resolve => setTimeout(resolve, 200)); return { ok: true } })
`
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `log-line-${process.pid}-${files.length}.tmp.ts`)
  files.push(file)
  writeFileSync(file, header + hook.replaceAll('\'fastify-request-journey\'', `'${index}'`) + footer)
  return await import(pathToFileURL(file).href) as Loaded
}

/** What tsc says of `file` in a strict project of its own: '' when it checks. */
async function typeErrors (file: string): Promise<string> {
  const args = [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--target', 'es2024', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--allowImportingTsExtensions', '--types', 'node', '--skipLibCheck', '--ignoreConfig', file]
  return await new Promise(resolve => {
    execFile(process.execPath, args, { cwd: root, timeout: 120_000 }, (err, stdout, stderr) => { resolve(err === null ? '' : stdout + stderr || String(err)) })
  })
}

test('the log-line hook docs/plugin.md gives: one line a request, with the route label, the span\'s numbers and, once traced, its ids', async () => {
  assert.match(hook, /addHook\('onResponse'/, 'the section\'s hook')
  const { app, journey, provider, spans, lines } = await load()
  assert.equal(await typeErrors(files[0]!), '', 'the hook type-checks as a strict TypeScript app has it')
  await app.listen({ port: 0, host: '127.0.0.1' })
  after(async () => { await app.close(); journey.close(); await provider.shutdown() })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const client = new Client(base) // one connection: the requests after the first are kept alive
  after(() => client.close())
  const clientMs: Record<string, number> = {}
  for (const path of ['/fast/7', '/slow', '/nope']) {
    const t0 = performance.now()
    await (await client.request({ method: 'GET', path })).body.dump()
    clientMs[path] = performance.now() - t0
  }
  await new Promise(resolve => setTimeout(resolve, 50))
  const logged = lines.map(l => JSON.parse(l) as Record<string, unknown>)
  assert.equal(logged.filter(l => l.msg === 'incoming request' || l.msg === 'request completed').length, 0, 'disableRequestLogging: only the journey\'s lines')
  const ours = logged.filter(l => l.msg === 'journey')
  assert.deepEqual(ours.map(l => [l.route, l.status]), [['/fast/:id', 200], ['/slow', 200], ['(unmatched)', 404]], 'one line a request, with the metrics\' route label')

  const [fast, slow, missing] = ours as Array<{ ms: number, stages: Record<string, number>, trace_id?: string, span_id?: string }>
  assert.deepEqual(Object.keys(fast!.stages), ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'], 'a first request: accept in its stages')
  assert.ok(!('accept' in slow!.stages), 'a kept-alive request has no accept')
  assert.ok(slow!.stages.handler! >= 199, `the slow handler: ${slow!.stages.handler}`)
  for (const [line, path] of [[fast, '/fast/7'], [slow, '/slow'], [missing, '/nope']] as const) {
    assert.ok(line!.ms > 0 && line!.ms <= clientMs[path]!, `${path}: ${line!.ms} ms on the server within the client's ${clientMs[path]!.toFixed(3)} ms`)
  }
  assert.equal(fast!.trace_id, undefined, 'untraced: no ids')
  assert.equal(missing!.trace_id, undefined, 'a 404 is not an error kept')
  const root = spans.getFinishedSpans().find(s => s.name === 'GET /slow')
  assert.ok(root !== undefined, 'the slow request was traced at its end')
  assert.equal(slow!.trace_id, root.spanContext().traceId, 'its line leads to its waterfall')
  assert.equal(slow!.span_id, root.spanContext().spanId)
  const durationMs = root.duration[0] * 1e3 + root.duration[1] / 1e6
  assert.ok(Math.abs(slow!.ms - durationMs) < 0.01, `its ms is its span's duration: ${slow!.ms} against ${durationMs}`)

  // Cut off in its handler on HTTP/1.1: Fastify never runs onResponse, so no line here (src/server.ts writes one).
  const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1')
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await new Promise(resolve => setTimeout(resolve, 15))
  socket.destroy()
  await new Promise(resolve => setTimeout(resolve, 100))
  assert.equal(lines.filter(l => l.includes('"msg":"journey"')).length, 3, 'a request cut off on HTTP/1.1 does not reach the hook')
})

test('on HTTP/2 a stream cut off in its handler reaches the hook too: its line says aborted, not the status it never sent', async () => {
  const { app, journey, provider, lines } = await load('http2: true')
  await app.listen({ port: 0, host: '127.0.0.1' })
  after(async () => { await app.close(); journey.close(); await provider.shutdown() })
  const session = connectH2(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  after(() => session.close())
  const stream = session.request({ ':path': '/slow' })
  stream.on('error', () => {})
  await new Promise(resolve => setTimeout(resolve, 15))
  stream.close(h2.NGHTTP2_CANCEL)
  await new Promise(resolve => setTimeout(resolve, 100))
  const ours = lines.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.msg === 'journey')
  assert.deepEqual(ours.map(l => [l.route, l.status]), [['/slow', 'aborted']])
})
