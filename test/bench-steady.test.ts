// npm run bench:steady groups paired windows by the pair's age: the grouping and the keep rule it shares
// with npm run bench, on hand-made windows.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AGE_BANDS, byAge, renderByAge, type AgeWindow } from '../bench/by-age.ts'
import { failingPairedKept, pairedKept } from '../bench/paired.ts'
import { median } from '../bench/stats.ts'

const ok = { cpuShare: 0.98, minShare: 0.45, errors: 0, hostSteal: 0.002 }
const w = (variant: string, pair: number, ageS: number, ratio: number, extra: Partial<AgeWindow> = {}): AgeWindow =>
  ({ variant, route: 'GET /', pair, ageS, ratio, ...ok, ...extra })

test('median: odd, even, and none (NaN, never 0)', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 2, 3]), 2.5)
  assert.ok(Number.isNaN(median([])))
})

test('a paired window counts only when the servers had the core and served without errors', () => {
  assert.equal(pairedKept(ok), true)
  assert.equal(pairedKept({ ...ok, cpuShare: 0.89 }), false, 'other load on the machine')
  assert.equal(pairedKept({ ...ok, minShare: 0.29 }), false, 'one server starved the other')
  assert.equal(pairedKept({ ...ok, errors: 1 }), false, 'an error response is not serving')
})

test('on the fail route (a storm of 500s) a window counts when every answer was a 500 and no socket failed', () => {
  const storm = { ...ok, requests: 1000, non2xx: 1000, errors: 1000 }
  assert.equal(failingPairedKept(storm), true)
  assert.equal(failingPairedKept({ ...storm, non2xx: 999, errors: 999 }), false, 'a 2xx: not the storm')
  assert.equal(failingPairedKept({ ...storm, errors: 1001 }), false, 'a socket error is not serving')
  assert.equal(failingPairedKept({ ...storm, cpuShare: 0.5 }), false, 'other load on the machine')
})

test('byAge: the median of each band\'s kept windows, per variant and route; edges go to the later band; dropped windows counted', () => {
  const windows = [
    w('a', 1, 2, 0.5), w('a', 1, 4, 0.8), w('a', 1, 6, 0.82), w('a', 1, 8, 0.7, { errors: 3 }),
    w('a', 2, 2, 0.6), w('a', 2, 4, 0.84), w('a', 2, 22, 0.9), w('a', 2, 60, 0.92),
    w('b', 1, 2, 1.0), { ...w('b', 1, 4, 0.9), route: 'POST /echo' }
  ]
  const rows = byAge(windows)
  assert.deepEqual(rows.map(r => [r.variant, r.route, r.pairs]), [['a', 'GET /', 2], ['b', 'GET /', 1], ['b', 'POST /echo', 1]])
  const a = rows[0]!.bands
  assert.equal(a.length, AGE_BANDS.length)
  assert.deepEqual(a.map(b => [b.median, b.windows, b.dropped]), [
    [0.55, 2, 0], // 0–4 s: both pairs' first windows
    [0.82, 3, 1], // 4–10 s: 0.8, 0.82, 0.84 (the 4 s windows belong here); the window with errors dropped
    [NaN, 0, 0],
    [0.9, 1, 0],
    [0.92, 1, 0] // 40 s and on
  ])
  assert.deepEqual([a[1]!.min, a[1]!.max], [0.8, 0.84])
})

test('renderByAge: one row per variant and route, a dash where a band has no window', () => {
  const text = renderByAge(byAge([w('journey-1pct', 1, 2, 0.57), w('journey-1pct', 1, 30, 0.86)]))
  const lines = text.split('\n')
  assert.equal(lines[0], '| variant | route | pairs | 0–4 s | 4–10 s | 10–20 s | 20–40 s | ≥ 40 s |')
  assert.equal(lines[2], '| journey-1pct | GET / | 1 | 0.57 0.57–0.57 (1) | — | — | 0.86 0.86–0.86 (1) | — |')
  assert.ok(!text.includes('NaN') && !text.includes('Infinity'))
  const slow = renderByAge(byAge([w('v', 1, 2, 0.9), w('v', 2, 2, 0.7, { slow: true }), w('v', 2, 4, 0.7, { slow: true })]))
  assert.match(slow.split('\n')[2]!, /^\| v \| GET \/ \| 2 \(1 slow\) \|/, 'a pair V8 left slow is kept and said')
  const busy = renderByAge(byAge([w('v', 1, 2, 0.9), w('v', 1, 4, 0.5, { cpuShare: 0.5 }), w('v', 1, 6, 0.9), w('v', 1, 12, 0.4, { errors: 2 })]))
  assert.equal(busy.split('\n')[2], '| v | GET / | 1 | 0.90 0.90–0.90 (1) | 0.90 0.90–0.90 (1, 1 dropped) | — (1 dropped) | — | — |', 'a dropped window is said, not hidden')
})
