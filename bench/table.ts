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
  /** Spans the receiver decoded per request in the solo window (protobuf, bench/otlp-spans.ts). */
  otlpSpansPerRequest: number
  /**
   * For the variants that sample every request: spans per request when nothing can be lost (requests one at
   * a time before any load). NaN (null in the JSON) for the others. Below it, the exporter dropped spans.
   */
  spansPerRequestUnloaded: number
  /**
   * CPU per request in the paired windows, µs: the variant's and its twin's, user space and kernel, and the
   * variant minus its twin (median of the per-window differences). The split comes from /proc's utime and
   * stime, which Linux apportions by sampling at its timer tick: each part of a single window is good to
   * about ±0.5 µs here, the sum to its 10 ms tick.
   */
  userUs: number
  kernelUs: number
  twinUserUs: number
  twinKernelUs: number
  addedUserUs: number
  addedKernelUs: number
  /**
   * How often the variant's wrk thread, and its twin's, went to sleep per response in the paired windows
   * (median; bench/wrk.ts). A response that finds wrk asleep costs the server more kernel time on loopback
   * (bench/pace.ts). Absent in results from before it was measured.
   */
  sleepsPerResponse?: number
  twinSleepsPerResponse?: number
  /**
   * Of the variant's processes (one per round), and of its twins: how many ended their round with V8's slow
   * process.nextTick (bench/tick-state.ts). Counted, not left out: how often it happens depends on what the
   * process runs. Absent in results from before it was counted.
   */
  slowProcesses?: number
  slowTwins?: number
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
  // Spans exported per request in the solo window; "of N" where the variant samples everything and N is what
  // the same requests made one at a time, so a shortfall is spans lost under load, visible in the table.
  const num = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x)
  const exported = (r: BenchRow | undefined): string => {
    if (r === undefined || !num(r.otlpSpansPerRequest)) return r !== undefined && r.otlpBytesPerRequest > 0 ? `(${r.otlpBytesPerRequest} B)` : '0'
    if (r.otlpSpansPerRequest === 0 && !num(r.spansPerRequestUnloaded)) return '0'
    return `${r.otlpSpansPerRequest.toFixed(2)}${num(r.spansPerRequestUnloaded) ? ` of ${r.spansPerRequestUnloaded.toFixed(2)}` : ''} (${r.otlpBytesPerRequest} B)`
  }
  const lines = [
    `| variant | ${ROUTE_ORDER.map(r => `${r}: ratio to bare, range (req/CPU-s alone)`).join(' | ')} | GET / p99 | peak RSS | GET / OTLP spans/req (bytes) |`,
    `|---|${ROUTE_ORDER.map(() => '---:').join('|')}|---:|---:|---:|`
  ]
  for (const v of variants) {
    const get = cell(v, 'GET /')
    const rss = Math.max(...rows.filter(r => r.variant === v).map(r => r.peakRssMb))
    lines.push(`| ${v} | ${ROUTE_ORDER.map(r => fmt(cell(v, r))).join(' | ')} | ${get !== undefined && Number.isFinite(get.p99Ms) ? `${get.p99Ms} ms` : '—'} | ${rss} MB | ${exported(get)} |`)
  }
  lines.push('', `${meta.date}, ${meta.machine}. ${meta.method}.`, '')
  // Counted once per variant (each of its rows carries the same counts).
  const slow = variants.flatMap(v => {
    const r = rows.find(x => x.variant === v)
    if (r === undefined || !num(r.slowProcesses) || !num(r.slowTwins) || (r.slowProcesses === 0 && r.slowTwins === 0)) return []
    // One process (and one twin) per round: the rounds are the paired windows' count, "k/n paired".
    const rounds = /\/(\d+) paired/.exec(r.windowsKept)?.[1]
    const of = rounds === undefined ? '' : ` of ${rounds}`
    return [`${v}: ${r.slowProcesses}${of}${r.slowTwins > 0 ? ` (bare twins: ${r.slowTwins}${of})` : ''}`]
  })
  if (rows.some(r => num(r.slowProcesses))) {
    lines.push(`Processes V8 left with a slow \`process.nextTick\` (megamorphic inline caches, [bench/tick-state.ts](bench/tick-state.ts); ≈ 2 µs more per request, for the process's life), counted and not left out: ${slow.length === 0 ? 'none' : slow.join('; ')}.`, '')
  }
  // Where the extra CPU goes: the instrumentation's own code runs in user space; the kernel's share is the
  // same sockets' work and mostly cancels out against the twin.
  // Rounded first, so a difference that rounds to nothing shows as 0.0 rather than as −0.0 or +0.0.
  const signed = (x: number): string => {
    const tenths = Math.round(x * 10)
    return tenths === 0 ? '0.0' : `${tenths > 0 ? '+' : '−'}${(Math.abs(tenths) / 10).toFixed(1)}`
  }
  const withSleeps = rows.some(r => num(r.sleepsPerResponse))
  const sleeps = (r: BenchRow): string => withSleeps && num(r.sleepsPerResponse) && num(r.twinSleepsPerResponse)
    ? `; ${r.sleepsPerResponse.toFixed(2)} (${r.twinSleepsPerResponse.toFixed(2)})`
    : ''
  const split = (r: BenchRow | undefined): string => r === undefined || !Number.isFinite(r.addedUserUs)
    ? '—'
    : `**${signed(r.addedUserUs)}** / ${signed(r.addedKernelUs)} (${r.twinUserUs.toFixed(1)} / ${r.twinKernelUs.toFixed(1)})${sleeps(r)}`
  lines.push(
    `| variant | ${ROUTE_ORDER.map(r => `${r}: added µs/request, user / kernel (twin's own)${withSleeps ? '; wrk sleeps/response (twin\'s)' : ''}`).join(' | ')} |`,
    `|---|${ROUTE_ORDER.map(() => '---:').join('|')}|`
  )
  for (const v of variants) lines.push(`| ${v} | ${ROUTE_ORDER.map(r => split(cell(v, r))).join(' | ')} |`)
  lines.push('', 'CPU per request in the same paired windows, the variant minus its bare twin (median of the windows\' differences), split by Linux\'s utime/stime: user space is where instrumentation code runs, kernel is the sockets\' work. In brackets: the twin\'s own user / kernel µs per request. The split is apportioned by sampling at the kernel\'s timer tick, so each figure of a single window is good to about ±0.5 µs.' +
    (withSleeps ? ' wrk sleeps/response: how often the variant\'s load generator thread (its twin\'s in brackets) went to sleep per response. On loopback a server\'s write wakes it when it sleeps and pays for that in its own kernel time, so a slower server pays more kernel per request whatever makes it slower: ≈ 4–5 µs once wrk sleeps after every response (npm run bench:pace, [bench/README.md](bench/README.md#what-being-slower-costs-in-the-kernel-npm-run-benchpace)).' : ''), '')
  return lines.join('\n')
}
