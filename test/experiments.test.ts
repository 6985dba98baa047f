// The experiment runner from the outside, as a user runs it: the list, a bad name, and a small accept
// storm whose result file accounts for every connection on every strategy.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'

const RUN = fileURLToPath(new URL('../experiments/run.ts', import.meta.url))
const run = (...args: string[]): { status: number | null, out: string } => {
  const r = spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', timeout: 120_000 })
  return { status: r.status, out: r.stdout + r.stderr }
}

test('--list names every experiment with its hypothesis; an unknown name or option exits 2', () => {
  const list = run('--list')
  assert.equal(list.status, 0)
  assert.match(list.out, /^accept\s+\S/m)
  assert.match(list.out, /^event-loop\s+\S/m)
  assert.equal(run('no-such-experiment').status, 2)
  assert.equal(run('accept', '--connections=many').status, 2)
})

test('a small accept storm runs every strategy and accounts for every connection', async () => {
  const r = run('accept', '--connections=60', '--concurrency=4')
  assert.equal(r.status, 0, r.out)
  const json = /^wrote (\S+\.json)$/m.exec(r.out)?.[1]
  assert.ok(json, r.out)
  const result = JSON.parse(readFileSync(json, 'utf8')) as { rows: Array<Record<string, string | number>> }
  assert.deepEqual(result.rows.map(x => x.variant), ['single', 'cluster-rr', 'cluster-shared', 'reuseport'])
  for (const row of result.rows) {
    assert.equal(row.failed, 0, `${String(row.variant)}: no failed requests`)
    const split = String(row['accepted per worker']).split(' / ').map(Number)
    assert.equal(split.reduce((a, b) => a + b, 0), 60, `${String(row.variant)}: ${String(row['accepted per worker'])}`)
  }
  assert.match(readFileSync(json.replace(/\.json$/, '.svg'), 'utf8'), /^<svg /)
})
