// The kernel issue's "done when", as far as it can be shown without a Grafana image: a real Prometheus
// scrapes the server while `npm run experiment -- accept` storms it (through --url, as a user would aim it
// at the stack), and the Connections & kernel dashboard's own queries — accept-queue depth, overflows,
// kernel wait before accept — return values above zero inside the experiment's window.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { after, test } from 'node:test'
import { connectionsDashboard, queriesOf } from '../../grafana/dashboards.ts'
import { killAll, start } from '../helpers/process.ts'
import { expand, skipWithoutPrometheus as skip, startPrometheus } from '../helpers/prometheus.ts'

after(killAll)
const RUN = fileURLToPath(new URL('../../experiments/run.ts', import.meta.url))

function runExperiment (args: string[]): Promise<{ status: number | null, out: string }> {
  const child = spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  return new Promise(resolve => child.on('exit', status => resolve({ status, out })))
}

test('during the accept experiment the Connections & kernel panels show queue depth, overflows and kernel wait', { skip, timeout: 120_000 }, async (ctx) => {
  // A short accept queue so the storm overflows it, and the queue sampler the compose stack runs.
  const app = await start({ LISTEN_BACKLOG: '4', JOURNEY_KERNEL_SAMPLE_MS: '20' })
  const prometheus = await startPrometheus(`127.0.0.1:${app.ports.metrics}`, '1s')
  try {
    await new Promise(resolve => setTimeout(resolve, 2500)) // a few quiet scrapes first
    const t0 = Date.now() / 1000
    const r = await runExperiment(['accept', `--url=http://127.0.0.1:${app.ports.http}`, `--metrics-url=http://127.0.0.1:${app.ports.metrics}/metrics`, '--connections=600', '--concurrency=64'])
    assert.equal(r.status, 0, r.out)
    assert.match(r.out, /Not applied to the target .*LISTEN_BACKLOG=511/, 'the report says its own backlog was not applied')
    await new Promise(resolve => setTimeout(resolve, 3000)) // scrapes after the storm
    const t1 = Date.now() / 1000

    // The dashboard's own queries, found by panel title and legend.
    const panel = (title: string, legend: RegExp): string => {
      const found = queriesOf(connectionsDashboard()).find(q => q.panel.startsWith(title) && legend.test(q.legend))
      assert.ok(found, `${title} / ${String(legend)}`)
      return found.expr
    }
    const maxOver = async (expr: string): Promise<number> => {
      const data = await prometheus.api('/api/v1/query_range', { query: expand(expr), start: String(t0), end: String(t1), step: '1' })
      const values = (data.result as Array<{ values: Array<[number, string]> }>).flatMap(s => s.values.map(v => Number(v[1]))).filter(Number.isFinite)
      return values.length === 0 ? NaN : Math.max(...values)
    }
    const peak = await maxOver(panel('Accept queue', /^deepest/))
    const capacity = await maxOver(panel('Accept queue', /^capacity/))
    const overflows = await maxOver(panel('Listen overflows', /^overflows/))
    const wait = await maxOver(panel('Wait in the kernel', /^before accept/))
    ctx.diagnostic(`panels over the storm: queue capacity ${capacity}, deepest queue ${peak}, overflows ${overflows.toFixed(1)}/s, kernel wait before accept p99 ${(wait * 1000).toFixed(1)} ms`)
    assert.equal(capacity, 4, 'the panel shows the queue the kernel made of LISTEN_BACKLOG=4')
    assert.ok(peak > 0, `accept-queue depth during the storm: ${peak}`)
    assert.ok(overflows > 0, `listen overflows per second during the storm: ${overflows}`)
    assert.ok(wait > 0, `kernel wait before accept p99 during the storm: ${wait} s`)
  } finally {
    prometheus.stop()
    app.child.kill('SIGTERM')
    await app.exited
  }
})

