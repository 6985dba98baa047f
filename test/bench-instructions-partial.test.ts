// npm run bench:instructions with fewer variants, routes, windows or requests than its defaults is a quick
// look: it writes bench/results/instructions-partial.json and leaves instructions.json — the run
// bench/README.md's instruction table quotes — as it was (a quick look had once replaced it); a
// cache-simulated quick look likewise leaves cache-sim.json, the cache table's source. Each test puts the
// file back, so a failure leaves no change to a committed result behind. Run here under
// valgrind with the smallest settings, over HTTP/1.1 and HTTP/2 (a server of each); it asserts no figure.
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { root } from '../bench/servers.ts'

const full = join(root, 'bench', 'results', 'instructions.json')
const partial = join(root, 'bench', 'results', 'instructions-partial.json')
const cacheSim = join(root, 'bench', 'results', 'cache-sim.json')
const cacheSimPartial = join(root, 'bench', 'results', 'cache-sim-partial.json')
const hasValgrind = spawnSync('which', ['valgrind', 'callgrind_control', 'callgrind_annotate']).status === 0
const noValgrind = hasValgrind ? false : 'valgrind is not installed (apt-get install valgrind): .ci/run installs it'

function instructions (env: Record<string, string>): Promise<{ code: number, out: string, err: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [join(root, 'bench', 'instructions.ts')], { env: { PATH: process.env.PATH, ...env }, timeout: 300_000 },
      (e, stdout, stderr) => resolve({ code: e === null ? 0 : (e as { code?: number }).code ?? 1, out: stdout, err: stderr }))
  })
}

test('a partial bench:instructions run writes results/instructions-partial.json and leaves instructions.json alone', { skip: noValgrind }, async (t) => {
  const before = readFileSync(full, 'utf8')
  t.after(() => { rmSync(partial, { force: true }); writeFileSync(full, before) })
  const { code, out, err } = await instructions({ VARIANTS: 'bare', ROUTES: 'get,h2', WINDOWS: '1', REQUESTS: '200', WARMUP: '300', TOP: '1' })
  assert.equal(code, 0, `${err}${out}`)
  assert.match(out, /^wrote .*bench\/results\/instructions-partial\.json$/m)
  assert.equal(readFileSync(full, 'utf8'), before, 'instructions.json changed')
  assert.ok(existsSync(partial))
  const rows = (JSON.parse(readFileSync(partial, 'utf8')) as { rows: Array<{ variant: string, route: string }> }).rows
  // The h2 row exists only if every answer came over HTTP/2 (instructions.ts stops at one that did not).
  assert.deepEqual(rows.map(r => `${r.variant} ${r.route}`), ['bare GET /', 'bare GET / over h2'])
})

test('bench:instructions refuses, before starting valgrind, a variant not measured on HTTP/2', () => {
  const r = spawnSync(process.execPath, [join(root, 'bench', 'instructions.ts')], {
    env: { PATH: process.env.PATH, VARIANTS: 'usual-100pct', ROUTES: 'h2' }, encoding: 'utf8', timeout: 60_000
  })
  assert.notEqual(r.status, 0)
  assert.match(r.stderr, /usual-100pct: not measured on HTTP\/2/)
})

test('a partial cache-simulated run writes results/cache-sim-partial.json and leaves cache-sim.json alone', { skip: noValgrind }, async (t) => {
  const before = readFileSync(cacheSim, 'utf8')
  t.after(() => { rmSync(cacheSimPartial, { force: true }); writeFileSync(cacheSim, before) })
  const { code, out, err } = await instructions({ CACHE_SIM: '1', VARIANTS: 'bare', ROUTES: 'get', WINDOWS: '1', REQUESTS: '200', WARMUP: '300', TOP: '1' })
  assert.equal(code, 0, `${err}${out}`)
  assert.match(out, /^wrote .*bench\/results\/cache-sim-partial\.json$/m)
  assert.equal(readFileSync(cacheSim, 'utf8'), before, 'cache-sim.json changed')
  const rows = (JSON.parse(readFileSync(cacheSimPartial, 'utf8')) as { rows: Array<{ route: string, d1MissesPerRequest?: number }> }).rows
  assert.deepEqual(rows.map(r => r.route), ['GET /'])
  assert.ok((rows[0]!.d1MissesPerRequest ?? 0) > 0, 'no simulated misses recorded')
})
