// npm run bench:pace loads a minimal server with a busy loop of N µs per request and prints its user and
// kernel CPU per request and how often wrk slept per response. It asserts no kernel figure (that is the
// bench's to print); it checks that the busy loop shows up where it must — as user-space CPU per request —
// and that every row of the summary is there.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../bench/pace.ts', import.meta.url))

test('bench:pace measures a busy loop as user CPU per request, with wrk\'s sleeps per response', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script], {
      env: { PATH: process.env.PATH, SPIN_US: '0,50', ROUNDS: '1', WARM_S: '1', WINDOW_S: '1' }, timeout: 60_000
    }, (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${String(err)}\n${stderr}`)))
  })
  const row = (spin: number): number[] => {
    const m = new RegExp(`^\\| ${spin} µs \\| (\\d+) \\| ([\\d.]+) \\| ([\\d.]+) \\| ([\\d.]+) \\|$`, 'm').exec(out)
    assert.ok(m !== null, `no row for ${spin} µs in:\n${out}`)
    return m.slice(1).map(Number)
  }
  const [rps0, user0, kernel0, sleeps0] = row(0)
  const [rps50, user50, kernel50, sleeps50] = row(50)
  // 50 µs of busy loop per request is at least 25 µs more user CPU per request, and fewer requests a second.
  // (With 20 µs and 1 s windows, a slow phase of this VM once read 55.3 µs per request without the loop and
  // 58.6 with it: the baseline's noise was as large as the loop.)
  assert.ok(user50! - user0! >= 25, `user µs per request: ${user0} without the loop, ${user50} with it`)
  assert.ok(rps50! < rps0!, out)
  for (const v of [kernel0, kernel50, sleeps0, sleeps50]) assert.ok(Number.isFinite(v) && v! >= 0, out)
})
