// Prometheus/OpenMetrics text read into numbers: what the experiments compare before and after a variant,
// and what the tests assert on. Series are matched by exact label pairs (so `route` never matches
// `http_route`), in whatever order the labels are rendered; exemplars and comments are dropped.

/** `name{labels}` (as rendered) → value. */
export type Metrics = Map<string, number>

export function parseMetrics (text: string): Metrics {
  const out: Metrics = new Map()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const m = /^(\S+?(?:\{[^}]*\})?) (\S+)/.exec(line)
    if (m !== null) out.set(m[1]!, Number(m[2]))
  }
  return out
}

export async function scrape (url: URL | string): Promise<Metrics> {
  const res = await fetch(url)
  if (!res.ok) throw new Error(`${String(url)}: HTTP ${res.status}`)
  return parseMetrics(await res.text())
}

/** The series of `name` whose labels include every pair of `match`, with their label sets. */
export function* series (m: Metrics, name: string, match: Record<string, string> = {}): Generator<[Map<string, string>, number]> {
  for (const [k, v] of m) {
    const brace = k.indexOf('{')
    if ((brace === -1 ? k : k.slice(0, brace)) !== name) continue
    const labels = new Map([...k.slice(brace + 1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(x => [x[1]!, x[2]!]))
    if (Object.entries(match).every(([l, val]) => labels.get(l) === val)) yield [labels, v]
  }
}

/** Sum of every series of `name` whose labels include all of `match`, e.g. sum(m, 'x_total', { listener: 'http' }); 0 if none. */
export function sum (m: Metrics, name: string, match: Record<string, string> = {}): number {
  let total = 0
  for (const [, v] of series(m, name, match)) total += v
  return total
}

/** The largest value among the series of `name` matching `match` (a cluster's slowest worker, say); NaN if none. */
export function most (m: Metrics, name: string, match: Record<string, string> = {}): number {
  let top = NaN
  for (const [, v] of series(m, name, match)) if (Number.isNaN(top) || v > top) top = v
  return top
}

/** The one series of `name` whose labels include all of `match` (a histogram bucket, say); NaN if there is none. */
export function sample (m: Metrics, name: string, match: Record<string, string> = {}): number {
  const found = [...series(m, name, match)]
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(match)} matches ${found.length} series`)
  return found[0]?.[1] ?? NaN
}

/** How much `name` (summed over the series matching `match`) grew between two scrapes. */
export function delta (before: Metrics, after: Metrics, name: string, match: Record<string, string> = {}): number {
  return sum(after, name, match) - sum(before, name, match)
}

/**
 * How much a counter that every process reads from one shared source grew — the network namespace's
 * TcpExt counters, exported by each worker of a cluster under its own `worker` label: the largest growth of
 * any one series, where delta() would count the same packets once per worker.
 */
export function sharedDelta (before: Metrics, after: Metrics, name: string, match: Record<string, string> = {}): number {
  const key = (labels: Map<string, string>): string => [...labels].sort().join(',')
  const was = new Map([...series(before, name, match)].map(([labels, v]) => [key(labels), v]))
  let grew = 0
  for (const [labels, v] of series(after, name, match)) grew = Math.max(grew, v - (was.get(key(labels)) ?? 0))
  return grew
}

/**
 * Adds to `into` what every series grew between two scrapes: a variant measured in several turns sums its
 * turns' growth there, and reads it as `after` against an empty `before`.
 */
export function addGrowth (into: Metrics, before: Metrics, after: Metrics): void {
  for (const [key, value] of after) into.set(key, (into.get(key) ?? 0) + value - (before.get(key) ?? 0))
}

/** Mean in ms of histogram `name` (in seconds) over what it observed between two scrapes; NaN if nothing. */
export function meanMs (before: Metrics, after: Metrics, name: string, match: Record<string, string> = {}): number {
  const n = delta(before, after, `${name}_count`, match)
  return n === 0 ? NaN : (delta(before, after, `${name}_sum`, match) / n) * 1000
}

/** The values of label `label` on series of `name`, with their sums. */
export function byLabel (m: Metrics, name: string, label: string, match: Record<string, string> = {}): Map<string, number> {
  const out = new Map<string, number>()
  for (const [labels, v] of series(m, name, match)) {
    const value = labels.get(label)
    if (value !== undefined) out.set(value, (out.get(value) ?? 0) + v)
  }
  return out
}
