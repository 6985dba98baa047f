// npm run bench with fewer variants, rounds or seconds than the full run is a quick look: it writes
// bench/results/partial.json (the row shape) and leaves latest.json and the README's table — the full
// run the README discusses — as they were. Run here with the smallest settings; it asserts no figure.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { root } from '../bench/servers.ts'

const files = ['README.md', 'bench/results/latest.json', 'bench/results/latest.meta.json'].map(f => join(root, f))
const partial = join(root, 'bench', 'results', 'partial.json')

test('a partial bench run writes results/partial.json and leaves latest.json and the README table alone', async (t) => {
  t.after(() => { rmSync(partial, { force: true }); rmSync(partial.replace('.json', '.meta.json'), { force: true }) })
  const before = files.map(f => readFileSync(f, 'utf8'))
  const { code, out, err } = await new Promise<{ code: number, out: string, err: string }>(resolve => {
    execFile(process.execPath, [join(root, 'bench', 'run.ts')], {
      env: { PATH: process.env.PATH, VARIANTS: 'journey-metrics', ROUNDS: '1', DURATION: '1' }, timeout: 240_000
    }, (e, stdout, stderr) => resolve({ code: e === null ? 0 : (e as { code?: number }).code ?? 1, out: stdout, err: stderr }))
  })
  assert.equal(code, 0, `${err}${out}`)
  assert.match(out, /^a partial run \(2 of \d+ variants, 1 round of 1 s\): bench\/results\/partial\.json; latest\.json and the README's table are left as they were$/m)
  assert.doesNotMatch(out, /README\.md performance table updated/)
  files.forEach((f, i) => assert.equal(readFileSync(f, 'utf8'), before[i], `${f} changed`))
  assert.ok(existsSync(partial))
  const rows = JSON.parse(readFileSync(partial, 'utf8')) as Array<Record<string, unknown>>
  assert.deepEqual(rows.map(r => `${String(r.variant)} ${String(r.route)}`).sort(), [
    'bare Fastify (same routes, no telemetry) GET /', 'bare Fastify (same routes, no telemetry) GET / over HTTPS',
    'bare Fastify (same routes, no telemetry) POST /echo 1 KiB', 'journey, metrics only GET /',
    'journey, metrics only GET / over HTTPS', 'journey, metrics only POST /echo 1 KiB'
  ])
  for (const r of rows) for (const k of ['rps', 'rpsPerCpuSecond', 'ratio', 'p50Ms', 'p99Ms', 'peakRssMb']) assert.ok(k in r, `${k} missing`)
})
