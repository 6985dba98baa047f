// A seeded generator for the randomized hardening tests, so a failure names the seed that replays it.

/** mulberry32: small, seeded, good enough to pick cases. Returns a draw in [0, n). */
export function prng (seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4294967296) * n)
  }
}
