// Renders bench/results/latest.json as the README's performance table. Pure, so the README can be checked
// against the results file in a test instead of drifting from it.
export interface BenchRow {
  variant: string
  route: string
  rps: number
  rpsPerCpuSecond: number
  /** Median over rounds of the ratio to bare loaded in the same seconds (bench/run.ts paired()); min and max show the spread. */
  ratio: number
  ratioMin: number
  ratioMax: number
  p50Ms: number
  p99Ms: number
  peakRssMb: number
  windowsKept: string
  otlpBytesPerRequest: number
}
export interface BenchMeta { date: string, machine: string, method: string }

const ROUTE_ORDER = ['GET /', 'POST /echo 1 KiB', 'GET / over HTTPS']

export function renderTable (rows: BenchRow[], meta: BenchMeta): string {
  const variants = [...new Set(rows.map(r => r.variant))]
  const cell = (variant: string, route: string): BenchRow | undefined => rows.find(r => r.variant === variant && r.route === route)
  // A dropped solo window leaves no req/CPU-s or p99 (NaN in memory, null in the JSON): shown as a dash, not 0 or NaN.
  const alone = (r: BenchRow): string => Number.isFinite(r.rpsPerCpuSecond) ? `${(r.rpsPerCpuSecond / 1000).toFixed(1)}k` : '—'
  const fmt = (r: BenchRow | undefined): string => r === undefined || !Number.isFinite(r.ratio)
    ? '—'
    : r.ratioMin === r.ratioMax ? `**${r.ratio.toFixed(2)}** (${alone(r)})` : `**${r.ratio.toFixed(2)}** ${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)} (${alone(r)})`
  const lines = [
    `| variant | ${ROUTE_ORDER.map(r => `${r}: ratio to bare, range (req/CPU-s alone)`).join(' | ')} | GET / p99 | peak RSS | OTLP bytes/req |`,
    `|---|${ROUTE_ORDER.map(() => '---:').join('|')}|---:|---:|---:|`
  ]
  for (const v of variants) {
    const get = cell(v, 'GET /')
    const rss = Math.max(...rows.filter(r => r.variant === v).map(r => r.peakRssMb))
    lines.push(`| ${v} | ${ROUTE_ORDER.map(r => fmt(cell(v, r))).join(' | ')} | ${get !== undefined && Number.isFinite(get.p99Ms) ? `${get.p99Ms} ms` : '—'} | ${rss} MB | ${get?.otlpBytesPerRequest ?? 0} |`)
  }
  lines.push('', `${meta.date}, ${meta.machine}. ${meta.method}.`, '')
  return lines.join('\n')
}
