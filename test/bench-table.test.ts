// The README's performance table is generated from bench/results/latest.json: it must not drift from it.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { renderTable, type BenchMeta, type BenchRow } from '../bench/table.ts'

test('the README performance table is the rendering of bench/results/latest.json (npm run bench rewrites both)', () => {
  const read = (p: string): string => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8')
  const rows = JSON.parse(read('bench/results/latest.json')) as BenchRow[]
  const meta = JSON.parse(read('bench/results/latest.meta.json')) as BenchMeta
  assert.ok(Array.isArray(rows) && rows.length > 0)
  for (const r of rows) for (const k of ['variant', 'route', 'rps', 'rpsPerCpuSecond', 'ratio', 'p50Ms', 'p99Ms', 'peakRssMb']) assert.ok(k in r, `${k} in every row`)
  const readme = read('README.md')
  const between = readme.slice(readme.indexOf('<!-- bench:begin -->') + '<!-- bench:begin -->'.length, readme.indexOf('<!-- bench:end -->'))
  assert.equal(between, '\n' + renderTable(rows, meta))
})

test('a variant whose solo window was dropped shows dashes, not NaN, whether the row comes from memory (NaN) or JSON (null)', () => {
  const meta: BenchMeta = { date: 'd', machine: 'm', method: 'x' }
  const row: BenchRow = {
    variant: 'v', route: 'GET /', rps: NaN, rpsPerCpuSecond: NaN, ratio: 0.9, ratioMin: 0.8, ratioMax: 1, p50Ms: NaN, p99Ms: NaN, peakRssMb: 100, windowsKept: '3/3 paired, 0/1 alone', otlpBytesPerRequest: 0
  }
  for (const rows of [[row], JSON.parse(JSON.stringify([row])) as BenchRow[]]) {
    const line = renderTable(rows, meta).split('\n').find(l => l.startsWith('| v |'))!
    assert.ok(!line.includes('NaN'), line)
    assert.match(line, /\*\*0\.90\*\* 0\.80–1\.00 \(—\) \|.*\| — \| 100 MB \|/)
  }
})
