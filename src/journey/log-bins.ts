// Log-linear bins for the journey page's percentiles: a count per bin, so a minute at any request rate
// costs the same fixed memory, every request is counted, and a quantile is exact to within one bin.
//
// Why not a sample of the latest values: at 10k requests a second a 5,000-value ring held the last half
// second, so "the last minute" on the page was not. Why not prom-client's histogram: its few fixed buckets
// suit Prometheus, which interpolates between them; the page wants numbers a reader can take as they are.
//
// Values are non-negative integers in the caller's unit (the page: 1/16 µs for durations, whole ms for
// TCP_INFO waits). Below 32 every integer has its own bin, so small values are exact; from 32 on each power
// of two is cut into 16 bins, so a bin is at most 1/16 of its lower bound wide (a quantile read as the
// middle of its bin is within ≈ 3 %). 464 bins cover 0 to 2³² − 1; larger values count in the last bin.

export const BINS = 464
const MAX = 2 ** 32 - 1

/** The bin of a value (a non-negative integer; fractions are truncated, larger values go to the last bin). */
export function binOf (value: number): number {
  const x = value >= MAX ? MAX : value > 0 ? value >>> 0 : 0
  if (x < 16) return x
  const e = 31 - Math.clz32(x) // the power of two x is in, 4..31
  return 16 + (e - 4) * 16 + ((x >>> (e - 4)) & 15)
}

/** The smallest value in a bin. */
export function binLow (bin: number): number {
  if (bin < 16) return bin
  const e = 4 + Math.floor((bin - 16) / 16)
  return (16 + (bin - 16) % 16) * 2 ** (e - 4)
}

/** How many integers a bin holds. */
export function binWidth (bin: number): number {
  return bin < 16 ? 1 : 2 ** Math.floor((bin - 16) / 16)
}

/**
 * The q-quantile of what the bins count (the value at rank ⌊q·n⌋ + 1 of n, as for a sorted list), read as
 * the middle of the integers its bin holds: exact where bins are one integer wide. NaN when empty.
 */
export function quantileOfBins (counts: ArrayLike<number>, total: number, q: number): number {
  if (total === 0) return NaN
  const rank = Math.min(total, Math.floor(q * total) + 1)
  let seen = 0
  for (let bin = 0; bin < BINS; bin++) {
    seen += counts[bin]!
    if (seen >= rank) return binLow(bin) + (binWidth(bin) - 1) / 2
  }
  return binLow(BINS - 1)
}
