// @ts-check
// Plain JavaScript, like compute-worker.js, which imports it: see there why.
import { performance } from 'node:perf_hooks'

/**
 * Burns CPU for `ms` milliseconds (a stand-in for real work) and returns the iterations done.
 * @param {number} ms
 * @returns {number}
 */
export function burn (ms) {
  const end = performance.now() + ms
  let i = 0
  while (performance.now() < end) i++
  return i
}
