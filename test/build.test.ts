// `npm run build` (deploy/build.ts): the server compiled to plain JavaScript runs with Node's TypeScript
// stripper switched off — every thread it starts included (the compute workers, the kernel sampler, the
// OTLP export worker) — and measures as the sources do. The Docker image runs exactly this.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { request } from 'undici'
import { killAll, startTraced } from './helpers/process.ts'
import { sample, scrape } from '../experiments/lib/metrics.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = `.dist-test-${process.pid}`
after(() => {
  killAll()
  rmSync(join(root, out), { recursive: true, force: true })
})

test('the built server runs without the type stripper, in every thread, and exports every stage', { timeout: 120_000 }, async () => {
  await promisify(execFile)(process.execPath, [join(root, 'deploy/build.ts'), out], { cwd: root, timeout: 90_000 })
  const { s, receiver } = await startTraced({ JOURNEY_EXPORT_THREAD: 'worker', JOURNEY_KERNEL_SAMPLE_MS: '20' },
    { main: join(root, out, 'main.js'), nodeArgs: ['--no-experimental-strip-types'] })
  for (const path of ['/', '/compute?ms=2&offload=1']) {
    const r = await request(`http://127.0.0.1:${s.ports.http}${path}`)
    assert.equal(r.statusCode, 200, path)
    await r.body.text()
  }
  const metrics = await scrape(`http://127.0.0.1:${s.ports.metrics}/metrics`)
  assert.ok(sample(metrics, 'journey_stage_duration_seconds_count', { stage: 'handler', route: '/compute' }) >= 1, 'stage histograms')
  assert.ok(!Number.isNaN(sample(metrics, 'journey_accept_queue_peak', { listener: 'http' })), 'the kernel sampler\'s worker runs')
  s.child.kill('SIGTERM')
  assert.equal((await s.exited).code, 0, s.logs())
  // Spans leave at the shutdown flush, through the export worker.
  const compute = receiver.all().find(sp => sp.name === 'GET /compute')
  assert.ok(compute !== undefined, 'the request span was exported')
  const stages = receiver.byTrace(compute.traceId).filter(sp => sp.parentSpanId === compute.spanId).map(sp => sp.name)
  for (const stage of ['journey.accept', 'journey.read', 'journey.parse', 'journey.handler', 'journey.write']) assert.ok(stages.includes(stage), `${stage} in ${stages.join(', ')}`)
  assert.doesNotMatch(s.logs(), /ERR_UNKNOWN_FILE_EXTENSION|"level":50/)
})
