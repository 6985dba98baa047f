// The journey's own worker thread (the accept-queue sampler) runs without the app's preloads: a CommonJS
// preload (`node -r …/register app.js`, or NODE_OPTIONS) would otherwise run in it too, a second
// OpenTelemetry SDK in a thread that serves nothing. Every other option stays, above all the permission
// model's, and a process option Node refuses per worker does not keep the sampler from starting.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { joinNodeOptions, ownWorkerOptions, refusedOptions, splitNodeOptions, withoutPreloads } from '../../src/journey/worker-options.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test('preloads are taken out of execArgv in every spelling, and nothing else', () => {
  assert.deepEqual(withoutPreloads(['-r', 'a.cjs', '--require', 'b.cjs', '--require=c.cjs', '--import', 'd.mjs', '--import=e.mjs', '--permission', '--allow-fs-read=/x', '--max-old-space-size=100', '--conditions=dev']),
    ['--permission', '--allow-fs-read=/x', '--max-old-space-size=100', '--conditions=dev'])
  assert.deepEqual(ownWorkerOptions(['--max-old-space-size=100'], {}), {}, 'no preload: the worker inherits as Node makes it')
  assert.deepEqual(ownWorkerOptions(['-r', 'a.cjs', '--permission'], {}), { execArgv: ['--permission'] })
})

test('NODE_OPTIONS is split as Node splits it, and rewritten only when it holds a preload', () => {
  const value = '--require "/opt/my app/otel.cjs"  --permission --allow-fs-read="/data/a \\"b\\"" --max-old-space-size=100'
  assert.deepEqual(splitNodeOptions(value), ['--require', '/opt/my app/otel.cjs', '--permission', '--allow-fs-read=/data/a "b"', '--max-old-space-size=100'])
  assert.deepEqual(splitNodeOptions(joinNodeOptions(splitNodeOptions(value))), splitNodeOptions(value))
  const env = { PATH: '/bin', NODE_OPTIONS: value }
  assert.deepEqual(ownWorkerOptions([], env), { env: { PATH: '/bin', NODE_OPTIONS: '--permission "--allow-fs-read=/data/a \\"b\\"" --max-old-space-size=100' } })
  assert.deepEqual(ownWorkerOptions([], { NODE_OPTIONS: '--max-old-space-size=100' }), {})
})

// A process with the sampler on, and a preload that says in which thread it ran; then the sampler's gauge.
const DIR = mkdtempSync(join(tmpdir(), 'journey worker options '))
after(() => rmSync(DIR, { recursive: true, force: true }))
mkdirSync(join(DIR, 'with space'))
const PRELOAD = join(DIR, 'with space', 'preload.cjs')
writeFileSync(PRELOAD, `const { isMainThread, threadId } = require('node:worker_threads')
if (!isMainThread) process._rawDebug('PRELOAD RAN IN WORKER ' + threadId)`)
const SCRIPT = join(DIR, 'app.mjs')
writeFileSync(SCRIPT, `
  const [{ default: Fastify }, { Registry }, { createJourney }] = await Promise.all(${JSON.stringify(['fastify', 'prom-client'].map(n => import.meta.resolve(n)).concat(new URL('../../src/journey/index.ts', import.meta.url).href))}.map(u => import(u)))
  const registry = new Registry()
  const journey = createJourney({ registry, kernelSampleMs: 5 })
  const app = Fastify()
  await app.register(journey.plugin)
  await app.listen({ port: 0, host: '127.0.0.1' })
  let metrics = ''
  for (const until = Date.now() + 5000; !/^journey_accept_queue_peak\\{/m.test(metrics) && Date.now() < until;) {
    await new Promise(resolve => setTimeout(resolve, 50))
    metrics = await registry.metrics()
  }
  await app.close(); journey.close()
  console.log(JSON.stringify({ sampled: /^journey_accept_queue_peak\\{/m.test(metrics) }))
`)

async function run (flags: string[], nodeOptions?: string): Promise<{ sampled: boolean, stderr: string }> {
  const env = { ...process.env, NODE_OPTIONS: nodeOptions ?? '' }
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [...flags, SCRIPT], { cwd: ROOT, env, timeout: 20_000 })
  return { ...JSON.parse(stdout.trim().split('\n').pop()!) as { sampled: boolean }, stderr }
}

test('the sampler\'s thread runs without the app\'s -r, --require or NODE_OPTIONS preloads, and samples', { skip: process.platform !== 'linux' && 'the sampler is Linux only' }, async () => {
  // Without the change, each of these runs the preload in the sampler's thread.
  for (const [flags, nodeOptions] of [[['-r', PRELOAD], undefined], [[`--require=${PRELOAD}`], undefined], [[], `--require "${PRELOAD}"`]] as const) {
    const r = await run([...flags], nodeOptions)
    assert.equal(r.sampled, true, `${flags.join(' ')} ${nodeOptions ?? ''}: the sampler ran`)
    assert.doesNotMatch(r.stderr, /PRELOAD RAN IN WORKER/, `${flags.join(' ')} ${nodeOptions ?? ''}`)
  }
})

test('process options Node refuses in a worker\'s execArgv (V8\'s heap and stack sizes) are left out of it too: still no preload there, and the sampler samples', { skip: process.platform !== 'linux' && 'the sampler is Linux only' }, async () => {
  const r = await run(['--stack-size=2000', '--max-old-space-size=512', '-r', PRELOAD])
  assert.equal(r.sampled, true)
  assert.doesNotMatch(r.stderr, /PRELOAD RAN IN WORKER/)
  assert.deepEqual(refusedOptions('Initiated Worker with invalid execArgv flags: --max-old-space-size=100, --stack-size=2000'), ['--max-old-space-size=100', '--stack-size=2000'])
  assert.deepEqual(refusedOptions('Initiated Worker with invalid NODE_OPTIONS env variable: --title= is not allowed in NODE_OPTIONS'), [])
})
