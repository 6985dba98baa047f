// The page's log-linear bins: every value lands in the bin that holds it, small values exactly, and a
// quantile read from the bins is within a bin's half-width of the quantile of the values themselves.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BINS, binLow, binOf, binWidth, quantileOfBins } from '../../src/journey/log-bins.ts'

test('each value lies in its bin; bins are contiguous and cover 0 to 2³² − 1', () => {
  const values = [0, 1, 15, 16, 31, 32, 33, 63, 64, 1000, 65_535, 65_536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]
  for (let i = 0; i < 20_000; i++) values.push(Math.floor(2 ** (Math.random() * 32)))
  for (const x of values) {
    const b = binOf(x)
    assert.ok(b >= 0 && b < BINS, `bin of ${x}`)
    assert.ok(binLow(b) <= x && x < binLow(b) + binWidth(b), `${x} in bin ${b} [${binLow(b)}, ${binLow(b) + binWidth(b)})`)
  }
  for (let b = 1; b < BINS; b++) assert.equal(binLow(b), binLow(b - 1) + binWidth(b - 1), `bin ${b} starts where ${b - 1} ends`)
  assert.equal(binLow(BINS - 1) + binWidth(BINS - 1), 2 ** 32)
  for (let x = 0; x < 32; x++) assert.equal(binWidth(binOf(x)), 1, `${x} has a bin of its own`)
  assert.equal(binOf(2 ** 40), BINS - 1, 'larger values count in the last bin')
  assert.equal(binOf(-3), 0)
  assert.equal(binOf(2.9), 2, 'fractions are truncated')
})

test('quantiles from the bins: exact for small integers, within 3.2 % otherwise, NaN when empty', () => {
  const sortedQuantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  const binned = (xs: number[]): Float64Array => {
    const counts = new Float64Array(BINS)
    for (const x of xs) counts[binOf(x)]!++
    return counts
  }
  const small = Array.from({ length: 1000 }, () => Math.floor(Math.random() * 32)).sort((a, b) => a - b)
  for (const q of [0, 0.5, 0.95, 0.99, 1]) assert.equal(quantileOfBins(binned(small), small.length, q), sortedQuantile(small, q), `q=${q}`)
  // Log-normal-ish durations, in 1/16 µs: 1 µs to 1 s.
  const wide = Array.from({ length: 20_000 }, () => Math.floor(16 * 10 ** (Math.random() * 6))).sort((a, b) => a - b)
  const counts = binned(wide)
  for (const q of [0.01, 0.5, 0.9, 0.95, 0.99, 0.999]) {
    const exact = sortedQuantile(wide, q)
    const got = quantileOfBins(counts, wide.length, q)
    assert.ok(Math.abs(got - exact) <= exact / 32 + 1, `q=${q}: ${got} against ${exact}`)
  }
  assert.ok(Number.isNaN(quantileOfBins(new Float64Array(BINS), 0, 0.5)))
})
