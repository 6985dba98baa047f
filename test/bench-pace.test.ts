// npm run bench:pace loads a minimal server with a busy loop of N µs per request and prints its user and
// kernel CPU per request and how often wrk slept per response. It asserts no kernel figure (that is the
// bench's to print); it checks that the busy loop shows up where it must — as user-space CPU per request —
// and that every row of the summary is there.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { whyNoPolling } from '../bench/idle.ts'

const script = fileURLToPath(new URL('../bench/pace.ts', import.meta.url))

const run = (env: Record<string, string>): Promise<string> => new Promise<string>((resolve, reject) => {
  execFile(process.execPath, [script], {
    env: { PATH: process.env.PATH, ROUNDS: '1', WARM_S: '1', WINDOW_S: '1', ...env }, timeout: 60_000
  }, (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${String(err)}\n${stderr}`)))
})
const row = (out: string, idle: string, spin: number): number[] => {
  const m = new RegExp(`^\\| ${idle} \\| ${spin} µs \\| (\\d+) \\| ([\\d.]+) \\| ([\\d.]+) \\| ([\\d.]+) \\|$`, 'm').exec(out)
  assert.ok(m !== null, `no ${idle} row for ${spin} µs in:\n${out}`)
  return m.slice(1).map(Number)
}

test('bench:pace measures a busy loop as user CPU per request, with wrk\'s sleeps per response', async (t) => {
  // 50 µs of busy loop per request is at least 25 µs more user CPU per request, and fewer requests a second.
  // Up to three runs: the loop spins on the wall clock, and in a VM phase where the host takes the CPU for
  // long stretches (steal, kept out of the guest's CPU times) a CI run read 71.1 µs per request without the
  // loop and 71.4 with it — both runs' windows were that phase, not the script. (With 20 µs and 1 s
  // windows, a slow phase once read 55.3 against 58.6: the baseline's noise was as large as the loop.)
  const seen: string[] = []
  for (let attempt = 1; attempt <= 3; attempt++) {
    const out = await run({ SPIN_US: '0,50', IDLE: 'halt' })
    const [rps0, user0, kernel0, sleeps0] = row(out, 'halt', 0)
    const [rps50, user50, kernel50, sleeps50] = row(out, 'halt', 50)
    for (const v of [kernel0, kernel50, sleeps0, sleeps50]) assert.ok(Number.isFinite(v) && v! >= 0, out)
    seen.push(`${user0} → ${user50} µs, ${rps0} → ${rps50} req/s`)
    if (user50! - user0! >= 25 && rps50! < rps0!) return
    t.diagnostic(`run ${attempt}: user µs per request ${user0} without the loop, ${user50} with it; ${rps0} and ${rps50} req/s`)
  }
  assert.fail(`three runs, none showed the loop (user µs and req/s without → with): ${seen.join('; ')}`)
})

const noPolling = whyNoPolling()
test('bench:pace measures with idle CPUs held polling too, and labels those rows so', { skip: noPolling === undefined ? undefined : `${noPolling}: bench:pace measures only halting idle here` }, async () => {
  const out = await run({ SPIN_US: '0', IDLE: 'poll' })
  for (const v of row(out, 'poll', 0)) assert.ok(Number.isFinite(v) && v >= 0, out)
  assert.match(out, /^round 1, poll idle, spin 0 µs:/m)
})
