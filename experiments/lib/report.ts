// What every experiment ends with: a table in the terminal, results/<name>-<timestamp>.json, and an SVG
// bar chart a browser can open. Grafana annotations mark each variant when GRAFANA_URL is set.
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

export type Row = Record<string, string | number>
export interface Chart { title: string, unit: string, series: Array<{ label: string, key: string }> }
export interface Result { name: string, hypothesis: string, machine: string, date: string, rows: Row[], notes: string[], requests?: unknown[] }

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const COLORS = ['#5794f2', '#ff9830', '#73bf69', '#f2495c', '#b877d9', '#fade2a']

// NaN is a mean or quantile of nothing (a stage no request of the variant had): '—', not a number, and no bar
// in the chart, where it read as a measured 0.
const fmt = (v: string | number): string => typeof v !== 'number' ? v : Number.isNaN(v) ? '—' : Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1)

export function printTable (rows: Row[]): void {
  const cols = [...new Set(rows.flatMap(r => Object.keys(r)))]
  const widths = cols.map(c => Math.max(c.length, ...rows.map(r => fmt(r[c] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ')
  console.log(line(cols))
  console.log(widths.map(w => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(cols.map(c => fmt(r[c] ?? ''))))
}

/** Words of `text` on lines of at most `width` characters (a longer word gets a line of its own), three lines at most. */
export function wrapWords (text: string, width: number): string[] {
  const lines: string[] = []
  for (const word of text.split(' ')) {
    const last = lines.at(-1)
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`
    else lines.push(word)
  }
  return lines.length <= 3 ? lines : [...lines.slice(0, 2), lines.slice(2).join(' ')]
}

/**
 * A y axis for values up to `max`: a round step (1, 2, 2.5 or 5 × 10^k) and the first multiple of it at or
 * above `max`, in at most four steps — gridlines at 0, 250, 500, 750, 1000 rather than at quarters of 999.3.
 */
export function niceAxis (max: number): { top: number, step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 }
  const magnitude = 10 ** Math.floor(Math.log10(max / 4))
  const step = [1, 2, 2.5, 5, 10].map(m => m * magnitude).find(s => s * 4 >= max)!
  // toPrecision: 3 × 0.1 is 0.30000000000000004, which would print as such.
  return { top: Number((Math.ceil(max / step - 1e-9) * step).toPrecision(12)), step }
}

const tick = (v: number): string => String(Number(v.toPrecision(6)))

/** Grouped bars: one group per row (variant), one bar per series, each with its value. Plain SVG, no library. */
export function barChart (rows: Row[], chart: Chart): string {
  const W = 760
  const H = 360
  const left = 60
  const bottom = 70
  const top = 40
  const axis = niceAxis(Math.max(0, ...rows.flatMap(r => chart.series.map(s => Number(r[s.key]) || 0))))
  const groupW = (W - left - 20) / rows.length
  const barW = Math.min(40, (groupW - 16) / chart.series.length)
  const y = (v: number): number => top + (H - top - bottom) * (1 - v / axis.top)
  const parts: string[] = []
  for (let t = 0; t * axis.step <= axis.top * (1 + 1e-9); t++) {
    const v = t * axis.step
    parts.push(`<line x1="${left}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${tick(v)}</text>`)
  }
  rows.forEach((r, i) => {
    const x0 = left + i * groupW + (groupW - barW * chart.series.length) / 2
    chart.series.forEach((s, j) => {
      const v = Number(r[s.key])
      if (!Number.isFinite(v)) return
      parts.push(`<rect x="${x0 + j * barW}" y="${y(v)}" width="${barW - 2}" height="${y(0) - y(v)}" fill="${COLORS[j % COLORS.length]}"><title>${String(r.variant)} ${s.label}: ${fmt(v)} ${chart.unit}</title></rect>`)
      // The value over its bar, where it fits (≈ 5.5 px a character at 10 px): a bar a pixel high still says what it is.
      if (fmt(v).length * 5.5 <= barW + 4) parts.push(`<text x="${x0 + j * barW + (barW - 2) / 2}" y="${y(v) - 3}" text-anchor="middle" font-size="10" fill="#444">${fmt(v)}</text>`)
    })
    const cx = left + i * groupW + groupW / 2
    // ≈ 6 px a character at 11 px: a name wider than its group goes on more lines rather than over its neighbours'.
    const lines = wrapWords(String(r.variant), Math.max(4, Math.floor(groupW / 6.5)))
    parts.push(`<text x="${cx}" y="${H - bottom + 16}" text-anchor="middle" font-size="11">${lines.map((l, k) => `<tspan x="${cx}" dy="${k === 0 ? 0 : 13}">${l}</tspan>`).join('')}</text>`)
  })
  // Each legend entry as wide as its label (≈ 6.5 px a character at 11 px), so a long one does not run into the next.
  let lx = left
  chart.series.forEach((s, j) => {
    parts.push(`<rect x="${lx}" y="${H - 24}" width="10" height="10" fill="${COLORS[j % COLORS.length]}"/><text x="${lx + 14}" y="${H - 15}" font-size="11">${s.label}</text>`)
    lx += Math.max(150, 14 + s.label.length * 6.5 + 20)
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="system-ui, sans-serif">` +
    `<text x="${left}" y="22" font-size="14" font-weight="600">${chart.title} (${chart.unit})</text>${parts.join('')}</svg>\n`
}

export function writeResult (result: Result, chart: Chart): { json: string, svg: string } {
  const dir = join(ROOT, 'results')
  mkdirSync(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const json = join(dir, `${result.name}-${stamp}.json`)
  const svg = join(dir, `${result.name}-${stamp}.svg`)
  writeFileSync(json, JSON.stringify(result, null, 2) + '\n')
  writeFileSync(svg, barChart(result.rows, chart))
  return { json, svg }
}

/** Marks a variant's span on the dashboards when GRAFANA_URL (with GRAFANA_TOKEN or basic auth in the URL) is set. */
export async function annotate (text: string, startMs: number, endMs: number): Promise<void> {
  const base = process.env.GRAFANA_URL
  if (base === undefined) return
  const url = new URL('/api/annotations', base)
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (process.env.GRAFANA_TOKEN !== undefined) headers.authorization = `Bearer ${process.env.GRAFANA_TOKEN}`
  if (url.username !== '') {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
    url.username = ''
    url.password = ''
  }
  await fetch(url, { method: 'POST', headers, body: JSON.stringify({ time: startMs, timeEnd: endMs, tags: ['experiment'], text }) })
    .then(r => { if (!r.ok) console.error(`grafana annotation: HTTP ${r.status}`) }, (err: Error) => console.error(`grafana annotation: ${err.message}`))
}
