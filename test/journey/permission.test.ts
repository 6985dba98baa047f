// A service run under Node's permission model (`node --permission`), which by default denies native
// addons and worker threads: the journey serves and measures what it may, says once what it may not and
// which flags allow it, and never stops the app from starting.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { tcpInfoUnavailable } from '../../src/journey/tcp-info.ts'
import { ALLOW_NET } from '../helpers/process.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const linux = process.platform === 'linux'

// The app: the journey with the accept-queue sampler asked for, one request, then its own scrape.
const APP = `
  const [{ default: Fastify }, { Registry }, { createJourney }] = await Promise.all(${JSON.stringify(['fastify', 'prom-client'].map(n => import.meta.resolve(n)).concat(new URL('../../src/journey/index.ts', import.meta.url).href))}.map(u => import(u)))
  const registry = new Registry()
  const journey = createJourney({ registry, kernelSampleMs: 5 })
  const app = Fastify()
  await app.register(journey.plugin)
  app.get('/', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/')
  await r.text()
  // The sampler's first round, once its thread has started (up to 2 s; where none can start, the full 2 s).
  let metrics = await registry.metrics()
  for (const until = Date.now() + 2000; !/^journey_accept_queue_peak\\{/m.test(metrics) && Date.now() < until;) {
    await new Promise(resolve => setTimeout(resolve, 50))
    metrics = await registry.metrics()
  }
  await app.close(); journey.close()
  console.log(JSON.stringify({ status: r.status, metrics, limitation: journey.kernelLimitation ?? null }))
`

// A file, not `-e`: a worker thread inherits the process's flags, and `--input-type` fails there.
const DIR = mkdtempSync(join(tmpdir(), 'journey-permission-'))
after(() => rmSync(DIR, { recursive: true, force: true }))
const SCRIPT = join(DIR, 'app.mjs')
writeFileSync(SCRIPT, APP)

async function runApp (flags: string[]): Promise<{ status: number, metrics: string, limitation: string | null, stderr: string }> {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [...flags, ...ALLOW_NET, SCRIPT], { cwd: ROOT, timeout: 20_000 })
  return { ...JSON.parse(stdout) as { status: number, metrics: string, limitation: string | null }, stderr }
}

const has = (metrics: string, name: string): boolean => new RegExp(`^${name}\\{`, 'm').test(metrics)

test('under --permission with reads allowed: requests are measured, and the addon and the sampler are refused with a warning that says which flags allow them', { skip: !linux && 'the addon and the sampler are Linux only' }, async () => {
  const r = await runApp(['--permission', '--allow-fs-read=*'])
  assert.equal(r.status, 200)
  assert.match(r.metrics, /^journey_stage_duration_seconds_count\{stage="handler",method="GET",route="\/"\} 1$/m)
  assert.ok(has(r.metrics, 'journey_accept_queue_length'), 'the queue at scrape, read from /proc')
  assert.ok(!has(r.metrics, 'journey_accept_queue_peak'), 'no sampler thread, no peak: not a made-up one')
  assert.match(r.stderr, /\[REQUEST_JOURNEY_SAMPLER_FAILED\].*could not start its worker thread \(ERR_ACCESS_DENIED.*--allow-worker/)
  assert.match(r.stderr, /\[REQUEST_JOURNEY_NO_TCP_INFO\].*is not allowed to load: Node's permission model.*ERR_DLOPEN_DISABLED.*--allow-addons/)
  assert.doesNotMatch(r.stderr, /install-scripts approve/, 'no advice to build what is built')
})

test('under --permission with the flags the warnings name: the addon loads and the sampler reports its peak', { skip: (!linux || tcpInfoUnavailable !== undefined) && process.env.CI !== 'true' && 'needs Linux and the TCP_INFO addon' }, async () => {
  const r = await runApp(['--permission', '--disable-warning=PERM0001', `--allow-fs-read=${ROOT}`, '--allow-fs-read=/etc/alpine-release', '--allow-fs-read=/proc', `--allow-fs-read=${DIR}`, '--allow-addons', '--allow-worker'])
  assert.equal(r.status, 200)
  assert.ok(has(r.metrics, 'journey_accept_queue_peak'), r.stderr)
  assert.match(r.metrics, /^journey_accept_kernel_wait_seconds_count\{listener="[^"]+"\} 1$/m, 'TCP_INFO at accept')
  assert.doesNotMatch(r.stderr, /REQUEST_JOURNEY_(SAMPLER_FAILED|NO_TCP_INFO)/)
})

test('under --permission without reads of /proc: the namespace\'s listen overflows are not exported as 0, and the journey says why', { skip: !linux && 'Linux /proc' }, async () => {
  const r = await runApp(['--permission', `--allow-fs-read=${ROOT}`, `--allow-fs-read=${DIR}`])
  assert.equal(r.status, 200)
  assert.match(r.metrics, /^journey_stage_duration_seconds_count\{stage="handler",method="GET",route="\/"\} 1$/m)
  // A 0 would say "no overflows"; the truth is "not known".
  assert.doesNotMatch(r.metrics, /^journey_listen_(overflows|drops)_total /m)
  assert.ok(!has(r.metrics, 'journey_accept_queue_length'), 'no queue from /proc (nor from TCP_INFO: no addon either)')
  assert.match(r.limitation ?? '', /\/proc\/net\/netstat cannot be read \(ERR_ACCESS_DENIED: Node's permission model/)
})
