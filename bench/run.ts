// npm run bench: what per-stage telemetry costs, next to the usual OpenTelemetry and Prometheus set-ups, in
// one run. Not a test: it prints figures, writes bench/results/latest.json and regenerates the README table.
//
// Every variant is bench/server.ts: the same Fastify app and routes, instrumented one way. All variants are
// started once, each on its own ports, and live for the whole run, so every one is measured warm and at the
// same age (V8 keeps growing a young process's heap for tens of seconds; a variant measured seconds after
// its start would be caught mid-growth). Windows are interleaved bare, A, bare, B, bare, … with the order
// rotated each round, so drift on a shared machine hits all alike and every variant window sits between two
// bare windows. The servers run on CPU 0; wrk and the local OTLP/HTTP receiver on CPU 1. The figure that
// matters is requests per *server CPU-second* (utime + stime from /proc/PID/stat): it does not move when
// other load steals the core, and windows in which the server got less than 90% of its core are dropped
// (and counted) rather than averaged in.
//
//   npm run bench                      # 3 rounds × 2 s windows (≈ 8 min)
//   ROUNDS=1 DURATION=2 npm run bench  # a quick look
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { cpus } from 'node:os'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VARIANTS, type VariantName } from './variants.ts'
import { renderTable, type BenchMeta, type BenchRow } from './table.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const DURATION = Number(process.env.DURATION ?? 2)
const CLK_TCK = 100
// Variant i listens on 3100 + i (HTTP) and 3543 + i (HTTPS); bare is variant 0.
const portsOf = (slot: number): { http: number, https: number } => ({ http: 3100 + slot, https: 3543 + slot })

const root = fileURLToPath(new URL('..', import.meta.url))
const LABEL: Record<VariantName, string> = {
  bare: 'bare Fastify (same routes, no telemetry)',
  'journey-metrics': 'journey, metrics only',
  'journey-fine': 'journey, fine precision, metrics only',
  'journey-1pct': 'journey, 1% head + tail keep',
  'journey-100pct': 'journey, 100% sampled',
  'usual-100pct': 'usual: sdk-node + http + @fastify/otel, 100%',
  'usual-10pct': 'usual: the same at 10%',
  'fastify-metrics': 'fastify-metrics',
  'prom-client-histogram': 'one prom-client histogram in onResponse'
}
const only = process.env.VARIANTS?.split(',') as VariantName[] | undefined
const variants = VARIANTS.filter(v => only === undefined || only.includes(v) || v === 'bare')
const ROUTES = [
  { name: 'GET /', url: (slot: number) => `http://127.0.0.1:${portsOf(slot).http}/`, lua: undefined as string | undefined },
  { name: 'POST /echo 1 KiB', url: (slot: number) => `http://127.0.0.1:${portsOf(slot).http}/echo`, lua: 'post' },
  { name: 'GET / over HTTPS', url: (slot: number) => `https://127.0.0.1:${portsOf(slot).https}/`, lua: undefined }
]

const dir = mkdtempSync(join(tmpdir(), 'journey-bench-'))
const body = JSON.stringify({ message: 'x'.repeat(1000) })
writeFileSync(join(dir, 'post.lua'), `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`)

// A local OTLP/HTTP receiver on the load generator's core, answering 200 to everything; it counts spans
// roughly (by bytes) so the report can say how much each sampled variant exported.
const receiver = spawn('taskset', ['-c', '1', process.execPath, '-e',
  "let n=0;require('http').createServer((q,r)=>{q.on('data',d=>n+=d.length);q.on('end',()=>r.end())}).listen(4318,'127.0.0.1');" +
  "process.on('message',()=>process.send(n))"], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
const receivedBytes = (): Promise<number> => new Promise(resolve => { receiver.once('message', n => resolve(n as number)); receiver.send('?') })

function cpuTicks (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14 and 15 of stat)
}
function peakRssMb (pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

async function startVariant (v: VariantName, slot: number): Promise<ChildProcess> {
  const { http, https } = portsOf(slot)
  const child = spawn('taskset', ['-c', '0', process.execPath, join(root, 'bench', 'server.ts')], {
    // Every exporting variant flushes a partial batch after 200 ms (not the default 5 s), so spans of one
    // window reach the receiver before the next window starts and are counted for the variant that made them.
    env: { PATH: process.env.PATH, BENCH_VARIANT: v, HTTP_PORT: String(http), HTTPS_PORT: String(https), OTEL_BSP_SCHEDULE_DELAY: '200' },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  for (let i = 0; i < 300; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
    if (child.exitCode !== null) break
    try {
      execFileSync('curl', ['-skf', '-o', '/dev/null', `https://127.0.0.1:${https}/`])
      return child
    } catch { /* not listening yet */ }
  }
  throw new Error(`${v} did not start`)
}

function wrk (url: string, seconds: number, lua?: string): { rps: number, p50: number, p99: number } {
  const args = ['-c', '1', 'wrk', '-t1', '-c50', `-d${seconds}s`, '--latency', ...(lua === undefined ? [] : ['-s', join(dir, `${lua}.lua`)]), url]
  const out = execFileSync('taskset', args, { encoding: 'utf8' })
  const unit = (v: string, u: string): number => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : 1)
  const lat = (p: string): number => { const m = new RegExp(`${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out); return m === null ? NaN : unit(m[1]!, m[2]!) }
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), p50: lat('50'), p99: lat('99') }
}

interface Sample {
  variant: VariantName, route: string, round: number, rps: number, rpsPerCpuSecond: number, cpuShare: number,
  p50Ms: number, p99Ms: number, peakRssMb: number, otlpBytesPerRequest: number,
  /** This window's req/CPU-s over the mean of the bare windows just before and after it. */
  pairedRatio: number
}
const samples: Sample[] = []
const started = Date.now()

async function measure (child: ChildProcess, v: VariantName, r: typeof ROUTES[number], slot: number, round: number): Promise<Omit<Sample, 'pairedRatio'>> {
  await new Promise(resolve => setTimeout(resolve, 400)) // let the previous window's last batch leave before counting
  const bytes0 = await receivedBytes()
  const t0 = cpuTicks(child.pid!)
  const w0 = performance.now()
  const res = wrk(r.url(slot), DURATION, r.lua)
  const cpuSeconds = (cpuTicks(child.pid!) - t0) / CLK_TCK
  const wall = (performance.now() - w0) / 1000
  return {
    variant: v,
    route: r.name,
    round,
    rps: res.rps,
    rpsPerCpuSecond: (res.rps * wall) / cpuSeconds,
    cpuShare: cpuSeconds / wall,
    p50Ms: res.p50,
    p99Ms: res.p99,
    peakRssMb: peakRssMb(child.pid!),
    otlpBytesPerRequest: ((await receivedBytes()) - bytes0) / (res.rps * wall)
  }
}

// Machine speed here drifts by tens of percent within minutes, so every variant window is paired with the
// bare windows measured right before and after it, and the ratio is taken per pair.
await new Promise(resolve => setTimeout(resolve, 300))
const procs: ChildProcess[] = []
for (const [slot, v] of variants.entries()) procs.push(await startVariant(v, slot))
// Bare is warmed once (it is then measured every other window); every other variant before each of its windows.
for (const r of ROUTES) wrk(r.url(0), 1, r.lua)
const others = variants.slice(1).map((v, i) => ({ v, slot: i + 1 }))
for (let round = 1; round <= ROUNDS; round++) {
  // Rotated each round, so no variant always follows the same neighbour.
  const order = others.map((_, i) => others[(i + round - 1) % others.length]!)
  for (const r of ROUTES) {
    let before = await measure(procs[0]!, 'bare', r, 0, round)
    samples.push({ ...before, pairedRatio: 1 })
    for (const { v, slot } of order) {
      // A server that sat idle for a minute is not the one that was warmed at the start: V8 shrinks an idle
      // heap and flushes code it has not run. One second of the same load first, so each window sees it hot.
      wrk(r.url(slot), 1, r.lua)
      const s = await measure(procs[slot]!, v, r, slot, round)
      const after = await measure(procs[0]!, 'bare', r, 0, round)
      const bareMean = (before.rpsPerCpuSecond + after.rpsPerCpuSecond) / 2
      const bareOk = before.cpuShare >= 0.9 && after.cpuShare >= 0.9
      samples.push({ ...s, pairedRatio: bareOk ? s.rpsPerCpuSecond / bareMean : NaN }, { ...after, pairedRatio: 1 })
      process.stdout.write(`round ${round}/${ROUNDS}  ${v.padEnd(22)} ${r.name.padEnd(17)} ${s.rps.toFixed(0).padStart(7)} req/s  ` +
        `${s.rpsPerCpuSecond.toFixed(0).padStart(7)} req/CPU-s  (bare ${bareMean.toFixed(0)})  ratio ${(s.rpsPerCpuSecond / bareMean).toFixed(2)}  ` +
        `server CPU ${(s.cpuShare * 100).toFixed(0).padStart(3)}%  ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
      before = after
    }
  }
}
for (const p of procs) p.kill('SIGKILL')
receiver.kill()

const median = (xs: number[]): number => {
  if (xs.length === 0) return NaN
  const a = [...xs].sort((x, y) => x - y)
  return a.length % 2 === 1 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2
}
const round2 = (x: number): number => Math.round(x * 100) / 100
const rows: BenchRow[] = []
for (const r of ROUTES) {
  for (const v of variants) {
    // Windows where the server did not get 90% of its core say more about the machine than the variant.
    const all = samples.filter(s => s.variant === v && s.route === r.name)
    const k = all.filter(s => s.cpuShare >= 0.9 && !Number.isNaN(s.pairedRatio))
    rows.push({
      variant: LABEL[v],
      route: r.name,
      rps: Math.round(median(k.map(s => s.rps))),
      rpsPerCpuSecond: Math.round(median(k.map(s => s.rpsPerCpuSecond))),
      ratio: round2(median(k.map(s => s.pairedRatio))),
      ratioMin: round2(Math.min(...k.map(s => s.pairedRatio))),
      ratioMax: round2(Math.max(...k.map(s => s.pairedRatio))),
      p50Ms: round2(median(k.map(s => s.p50Ms))),
      p99Ms: round2(median(k.map(s => s.p99Ms))),
      peakRssMb: Math.round(Math.max(...all.map(s => s.peakRssMb))),
      windowsKept: `${k.length}/${all.length}`,
      otlpBytesPerRequest: Math.round(median(all.map(s => s.otlpBytesPerRequest)))
    })
  }
}
const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU'
const meta: BenchMeta = {
  date: new Date().toISOString().slice(0, 10),
  machine: `${cpus().length} × ${cpu}, Node ${process.version}`,
  method: `${ROUNDS} rounds; every variant's server runs for the whole benchmark; each ${DURATION} s window of a variant sits between two ${DURATION} s windows of bare, in an order rotated every round; wrk -t1 -c50 keep-alive on CPU 1, servers on CPU 0; ` +
    'ratio = requests per server CPU-second / the mean of the two bare windows around it, median (and range) over rounds, windows where a server had < 90% of its core dropped; ' +
    'peak RSS = VmHWM of the variant\'s process over the whole run'
}
console.table(rows)
writeFileSync(join(root, 'bench', 'results', 'latest.json'), JSON.stringify(rows, null, 2) + '\n')
writeFileSync(join(root, 'bench', 'results', 'latest.meta.json'), JSON.stringify(meta, null, 2) + '\n')

// The README's performance table is generated from these files (test/bench-table.test.ts checks it).
const readme = join(root, 'README.md')
const text = readFileSync(readme, 'utf8')
const begin = '<!-- bench:begin -->'
const end = '<!-- bench:end -->'
if (text.includes(begin) && text.includes(end)) {
  writeFileSync(readme, text.slice(0, text.indexOf(begin) + begin.length) + '\n' + renderTable(rows, meta) + text.slice(text.indexOf(end)))
  console.log('README.md performance table updated')
}
