// npm run bench:instructions with fewer variants, routes, windows or requests than its defaults is a quick
// look: it writes bench/results/instructions-partial.json and leaves instructions.json — the run
// bench/README.md's instruction table quotes — as it was (a quick look had once replaced it). Run here under
// valgrind with the smallest settings, over HTTP/1.1 and HTTP/2 (a server of each); it asserts no figure.
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { root } from '../bench/servers.ts'

const full = join(root, 'bench', 'results', 'instructions.json')
const partial = join(root, 'bench', 'results', 'instructions-partial.json')
const hasValgrind = spawnSync('which', ['valgrind', 'callgrind_control', 'callgrind_annotate']).status === 0

test('a partial bench:instructions run writes results/instructions-partial.json and leaves instructions.json alone', {
  skip: hasValgrind ? false : 'valgrind is not installed (apt-get install valgrind): .ci/run installs it'
}, async (t) => {
  t.after(() => { rmSync(partial, { force: true }) })
  const before = readFileSync(full, 'utf8')
  const { code, out, err } = await new Promise<{ code: number, out: string, err: string }>(resolve => {
    execFile(process.execPath, [join(root, 'bench', 'instructions.ts')], {
      env: { PATH: process.env.PATH, VARIANTS: 'bare', ROUTES: 'get,h2', WINDOWS: '1', REQUESTS: '200', WARMUP: '300', TOP: '1' }, timeout: 300_000
    }, (e, stdout, stderr) => resolve({ code: e === null ? 0 : (e as { code?: number }).code ?? 1, out: stdout, err: stderr }))
  })
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
