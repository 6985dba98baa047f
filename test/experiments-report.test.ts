// The experiments' report: a value measured over nothing is shown as such, never as a measured 0.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { barChart, printTable } from '../experiments/lib/report.ts'

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
