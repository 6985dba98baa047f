// npm run bench:steady's figures: paired ratios grouped by how long the pair had been under load. Pure, so
// the grouping is tested (test/bench-steady.test.ts) rather than trusted.
import { pairedKept, type Paired } from './paired.ts'
import { median } from './stats.ts'

/** One paired window of one process pair, `ageS` seconds of load after the pair started serving (at its end). */
export interface AgeWindow extends Pick<Paired, 'ratio' | 'cpuShare' | 'minShare' | 'errors' | 'hostSteal'> {
  variant: string
  route: string
  pair: number
  ageS: number
  /** V8 left one of the pair with a slow nextTick (tick-state.ts): kept, and said. */
  slow?: boolean
}

/**
 * Age bands, in seconds of load. npm run bench measures its servers 5–15 s into their load (GET / first,
 * HTTPS last), in the second and third bands.
 */
export const AGE_BANDS: ReadonlyArray<readonly [number, number]> = [[0, 4], [4, 10], [10, 20], [20, 40], [40, Infinity]]

interface BandFigure { from: number, to: number, median: number, min: number, max: number, windows: number, dropped: number }
export interface AgeRow { variant: string, route: string, pairs: number, slowPairs: number, bands: BandFigure[] }

/** Per variant and route (in first-seen order), the median ratio of the kept windows ending in each band; a window ending on a band's edge belongs to the later band. */
export function byAge (windows: readonly AgeWindow[], bands = AGE_BANDS): AgeRow[] {
  const rows: AgeRow[] = []
  const keys = [...new Set(windows.map(w => `${w.variant}\u0000${w.route}`))]
  for (const key of keys) {
    const [variant, route] = key.split('\u0000') as [string, string]
    const mine = windows.filter(w => w.variant === variant && w.route === route)
    rows.push({
      variant,
      route,
      pairs: new Set(mine.map(w => w.pair)).size,
      slowPairs: new Set(mine.filter(w => w.slow === true).map(w => w.pair)).size,
      bands: bands.map(([from, to]) => {
        const inBand = mine.filter(w => w.ageS >= from && w.ageS < to)
        const ratios = inBand.filter(pairedKept).map(w => w.ratio)
        return { from, to, median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), windows: ratios.length, dropped: inBand.length - ratios.length }
      })
    })
  }
  return rows
}

const band = (b: BandFigure): string => b.to === Infinity ? `≥ ${b.from} s` : `${b.from}–${b.to} s`
// Windows that did not measure serving (paired.ts) are dropped from the median, and said.
const dropped = (b: BandFigure): string => b.dropped > 0 ? `, ${b.dropped} dropped` : ''
const cell = (b: BandFigure): string => b.windows === 0
  ? `—${b.dropped > 0 ? ` (${b.dropped} dropped)` : ''}`
  : `${b.median.toFixed(2)} ${b.min.toFixed(2)}–${b.max.toFixed(2)} (${b.windows}${dropped(b)})`

/** The printed table: a row per variant and route, a column per age band (median, range, windows kept and dropped); pairs V8 left slow are counted. */
export function renderByAge (rows: readonly AgeRow[]): string {
  if (rows.length === 0) return ''
  const head = ['variant', 'route', 'pairs', ...rows[0]!.bands.map(band)]
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => i < 2 ? '---' : '---:').join('|')}|`]
  for (const r of rows) lines.push(`| ${[r.variant, r.route, r.slowPairs > 0 ? `${r.pairs} (${r.slowPairs} slow)` : String(r.pairs), ...r.bands.map(cell)].join(' | ')} |`)
  return lines.join('\n')
}
