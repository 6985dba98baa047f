/** Burns CPU for `ms` milliseconds (a stand-in for real work) and returns the iterations done. */
export function burn (ms: number): number {
  const end = performance.now() + ms
  let i = 0
  while (performance.now() < end) i++
  return i
}
