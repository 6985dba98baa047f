// The experiments' report: a value measured over nothing is shown as such, never as a measured 0.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { barChart, niceAxis, printTable, wrapWords } from '../experiments/lib/report.ts'

const rows = [
  { variant: 'normal clients only', 'read mean ms': NaN, 'normal p50 ms': 0.12 },
  { variant: 'slow but complete', 'read mean ms': 973.6, 'normal p50 ms': 0.12 }
]

test('the table prints a mean of nothing as "—"', (t) => {
  const lines: string[] = []
  t.mock.method(console, 'log', (line: string) => { lines.push(line) })
  printTable(rows)
  assert.match(lines[2]!, /normal clients only\s+—\s+0\.12$/)
  assert.match(lines[3]!, /slow but complete\s+973\.6\s+0\.12$/)
  assert.ok(!lines.some(l => l.includes('NaN')))
})

test('the chart draws no bar for a mean of nothing, and one for each measured value', () => {
  const svg = barChart(rows, { title: 't', unit: 'ms', series: [{ label: 'read', key: 'read mean ms' }, { label: 'p50', key: 'normal p50 ms' }] })
  const bars = [...svg.matchAll(/<title>([^<]*)<\/title>/g)].map(m => m[1])
  assert.deepEqual(bars, ['normal clients only p50: 0.12 ms', 'slow but complete read: 973.6 ms', 'slow but complete p50: 0.12 ms'])
})

test('a variant name wider than its group is wrapped onto lines under it, not drawn over its neighbours', () => {
  assert.deepEqual(wrapWords('10,000 schema gzip', 11), ['10,000', 'schema gzip'])
  assert.deepEqual(wrapWords('fast reader', 20), ['fast reader'])
  assert.deepEqual(wrapWords('a b c d e', 1), ['a', 'b', 'c d e'], 'three lines at most')
  const many = Array.from({ length: 9 }, (_, i) => ({ variant: `10,000 schema variant${i}`, v: i + 1 }))
  const svg = barChart(many, { title: 't', unit: 'ms', series: [{ label: 'v', key: 'v' }] })
  const labels = [...svg.matchAll(/<text [^>]*>((?:<tspan[^>]*>[^<]*<\/tspan>)+)<\/text>/g)].map(m => [...m[1]!.matchAll(/<tspan[^>]*>([^<]*)<\/tspan>/g)].map(t => t[1]))
  assert.equal(labels.length, 9)
  for (const lines of labels) assert.deepEqual(lines, ['10,000', 'schema', lines[2]], `one name per line: ${lines.join('|')}`)
})

test('legend entries are spaced by their labels, so a long one does not run into the next', () => {
  const series = [{ label: 'client: response p99', key: 'a' }, { label: 'server: kernel wait before accept (mean)', key: 'b' }, { label: 'server: handler stage of / (mean)', key: 'c' }]
  const svg = barChart([{ variant: 'x', a: 1, b: 2, c: 3 }], { title: 't', unit: 'ms', series })
  const xs = series.map(s => Number(new RegExp(`<text x="([\\d.]+)"[^>]*>${s.label.replace(/[()/]/g, '\\$&')}</text>`).exec(svg)![1]))
  for (let j = 1; j < xs.length; j++) {
    assert.ok(xs[j]! - xs[j - 1]! >= series[j - 1]!.label.length * 6.5, `${series[j]!.label} starts after ${series[j - 1]!.label} ends`)
  }
  assert.ok(xs.at(-1)! + series.at(-1)!.label.length * 6.5 <= 760, 'the last one ends inside the chart')
})

test('the y axis steps by round numbers up to the first at or above the tallest bar', () => {
  assert.deepEqual(niceAxis(999.3), { top: 1000, step: 250 })
  assert.deepEqual(niceAxis(249.2), { top: 300, step: 100 })
  assert.deepEqual(niceAxis(18.3), { top: 20, step: 5 })
  assert.deepEqual(niceAxis(0.3), { top: 0.3, step: 0.1 })
  assert.deepEqual(niceAxis(7), { top: 8, step: 2 })
  assert.deepEqual(niceAxis(0), { top: 1, step: 0.25 }, 'nothing measured: an axis all the same')
  for (const max of [0.013, 0.99, 1, 3.7, 41.98, 1e6 + 1]) {
    const { top, step } = niceAxis(max)
    assert.ok(top >= max && top / step <= 4 + 1e-9 && top - step < max, `${max}: ${top} in steps of ${step}`)
  }
  const svg = barChart([{ variant: 'fast', a: 18.3, b: 10.3 }, { variant: 'slow', a: 999.3, b: 480.1 }], { title: 't', unit: 'ms', series: [{ label: 'client', key: 'a' }, { label: 'write', key: 'b' }] })
  const ticks = [...svg.matchAll(/<text x="54" [^>]*>([^<]*)<\/text>/g)].map(m => m[1])
  assert.deepEqual(ticks, ['0', '250', '500', '750', '1000'])
  const values = [...svg.matchAll(/<text [^>]*font-size="10"[^>]*>([^<]*)<\/text>/g)].map(m => m[1])
  assert.deepEqual(values, ['18.3', '10.3', '999.3', '480.1'], 'each bar says its value')
})
