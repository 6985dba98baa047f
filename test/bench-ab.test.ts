// npm run bench:ab runs two servers of one variant paired on one core and prints B's CPU per request over
// A's, window by window. Here with the cheapest settings (it asserts no figure: that is the bench's to
// print): the two sides' servers are started with their own flags, every kept window has a ratio, the summary comes last, and a
// checkout that is not this project's, or one that lacks the TCP_INFO addon this one has, stops it before any
// server starts.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const script = fileURLToPath(new URL('../bench/ab.ts', import.meta.url))
function run (env: Record<string, string>): Promise<{ code: number, out: string, err: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [script], { env: { PATH: process.env.PATH, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, out: stdout, err: stderr }))
  })
}

test('bench:ab pairs A and B, each with its own flags, and prints B/A per window and a median', async () => {
  // The bench drops windows in which its servers had < 90 % of CPU 0, and exits 1 when it kept none. Other
  // test files running at the same time (callgrind, bench:pace's busy loop) took that core for every window
  // of three attempts in a row in CI, so this run keeps busy windows (KEEP_BUSY_WINDOWS): it checks the
  // script's pairing and printing, not figures. Which windows count is bench-steady.test's (pairedKept).
  const { code, out, err } = await run({ VARIANT: 'bare', PAIRS: '1', WINDOWS: '2', WINDOW_S: '1', WARM: '1', B_FLAGS: '--stack-size=2000', KEEP_BUSY_WINDOWS: '1' })
  assert.equal(code, 0, `${err}${out}`)
  assert.match(out, /^ {2}A: .* --no-memory-reducer$/m)
  assert.match(out, /^ {2}B: .* --no-memory-reducer --stack-size=2000$/m)
  // The flags reached the server B started, and only that one; each runs bench/server.ts compiled (compile.ts),
  // under the checkout's path, which may hold spaces.
  assert.match(out, /^pair 1 B pid \d+: --no-memory-reducer --stack-size=2000 --no-experimental-strip-types --allow-natives-syntax .*\/\.dist-bench-\d+\/bench\/server\.js$/m)
  assert.match(out, /^pair 1 A pid \d+: --no-memory-reducer --no-experimental-strip-types --allow-natives-syntax .*\/\.dist-bench-\d+\/bench\/server\.js$/m)
  const windows = out.match(/^pair 1 window \d {2}A [\d.]+ \+ [\d.]+ µs {2}B [\d.]+ \+ [\d.]+ µs .* host steal \d+\.\d % {2}B\/A \d\.\d{3}$/gm) ?? []
  assert.ok(windows.length >= 1, out)
  assert.match(out, /^B\/A CPU per request: median \d\.\d{3}, range \d\.\d{3}–\d\.\d{3}, \d+ windows in 1 pair/m)
})

test('bench:ab refuses a checkout without bench/server.ts', async () => {
  const { code, err } = await run({ A: '/nonexistent-checkout', VARIANT: 'bare' })
  assert.notEqual(code, 0)
  assert.match(err, /A=\/nonexistent-checkout: no bench\/server\.ts there/)
})

test('bench:ab refuses to compare a checkout that has the TCP_INFO addon with one that has not', async () => {
  const bare = mkdtempSync(join(tmpdir(), 'ab-checkout-'))
  mkdirSync(join(bare, 'bench'))
  writeFileSync(join(bare, 'bench', 'server.ts'), '')
  const { code, err } = await run({ A: bare, VARIANT: 'bare' })
  assert.notEqual(code, 0)
  assert.match(err, /has no TCP_INFO addon \(native\/build\) and the other side has/)
})
