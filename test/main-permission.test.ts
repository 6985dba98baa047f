// The demo server under Node's permission model with only reads of the project allowed (no worker threads,
// no native addons): it starts and serves, and each thing it may not do says which flag it lacks — the
// offloaded /compute with a 503, the OTLP export thread in the start-up line and each export failure's — instead of the
// process dying at start on the worker pool.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { ALLOW_NET, killAll, startTraced } from './helpers/process.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
after(killAll)

test('under --permission without --allow-worker: the demo serves; the offloaded route and the export thread say what they lack', async () => {
  const { s } = await startTraced({ JOURNEY_EXPORT_THREAD: 'worker', OTEL_BSP_SCHEDULE_DELAY: '100' },
    { nodeArgs: ['--permission', `--allow-fs-read=${ROOT}`, ...ALLOW_NET] })
  const base = `http://127.0.0.1:${s.ports.http}`
  const home = await request(`${base}/`)
  assert.equal(home.statusCode, 200)
  await home.body.dump()
  const inline = await request(`${base}/compute?ms=1`)
  assert.equal(inline.statusCode, 200, 'the handler\'s own work needs no thread')
  await inline.body.dump()
  const offloaded = await request(`${base}/compute?ms=1&offload=1`)
  assert.equal(offloaded.statusCode, 503)
  assert.match((await offloaded.body.json() as { message: string }).message, /--allow-worker/)
  // The export thread cannot start: the start-up line says so where it says where spans go, and each
  // failed export is logged saying why.
  const lines = (): string[] => s.logs().split('\n')
  assert.match(lines().find(l => l.includes('"msg":"telemetry"')) ?? '',
    /"spans":"OTLP to [^"]*, but the OTLP export worker could not start \(ERR_ACCESS_DENIED[^)]*--allow-worker\): exports fail until it starts"/)
  const failedExport = (): string | undefined => lines().find(l => !l.includes('"msg":"telemetry"') && l.includes('the OTLP export worker could not start'))
  const until = Date.now() + 10_000
  while (failedExport() === undefined && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
  assert.match(failedExport() ?? '', /the OTLP export worker could not start \(ERR_ACCESS_DENIED[^)]*--allow-worker\)/)
  s.child.kill('SIGTERM')
  assert.deepEqual(await s.exited, { code: 0, signal: null })
})
