// The demo server under Node's permission model with only reads of the project allowed (no worker threads,
// no native addons): it starts and serves, and each thing it may not do says which flag it lacks — the
// offloaded /compute with a 503, the OTLP export thread in the export-failure log line — instead of the
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
  // The traced requests' spans go to the export thread, which cannot start: the failure is logged, saying why.
  const until = Date.now() + 10_000
  while (!s.logs().includes('the OTLP export worker could not start') && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
  assert.match(s.logs(), /the OTLP export worker could not start \(ERR_ACCESS_DENIED[^)]*--allow-worker\)/)
  s.child.kill('SIGTERM')
  assert.deepEqual(await s.exited, { code: 0, signal: null })
})
