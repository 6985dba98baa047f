// A quick comparative benchmark: what the journey costs against the same routes with no telemetry.
// Not a test: it prints figures. Variants are interleaved (A B C … A B C …) so drift hits all alike;
// the server is pinned to CPU 0 and wrk to CPU 1, and the server's own CPU time is read from /proc, so
// "requests per server CPU-second" stays meaningful on a noisy machine.
//
//   npm run bench                 # 3 rounds × 5 s per variant and route
//   ROUNDS=1 DURATION=3 npm run bench
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const DURATION = Number(process.env.DURATION ?? 5)
const CLK_TCK = 100

const root = fileURLToPath(new URL('..', import.meta.url))
interface Variant { name: string, script: string, env: Record<string, string> }
const journeyEnv = { LOG_LEVEL: 'warn', METRICS_PORT: '0', HTTPS_PORT: '0' }
const VARIANTS: Variant[] = [
  // The same server and app (logger, hooks, limits) with the journey switched off and no OpenTelemetry SDK.
  { name: 'bare', script: 'src/main.ts', env: { ...journeyEnv, JOURNEY_ENABLED: 'false', OTEL_SDK_DISABLED: 'true' } },
  { name: 'journey metrics only', script: 'src/main.ts', env: { ...journeyEnv, OTEL_TRACES_EXPORTER: 'none' } },
  { name: 'journey fine, metrics only', script: 'src/main.ts', env: { ...journeyEnv, OTEL_TRACES_EXPORTER: 'none', JOURNEY_PRECISION: 'fine' } },
  { name: 'journey 1% + tail keep', script: 'src/main.ts', env: { ...journeyEnv, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' } },
  { name: 'journey 100%', script: 'src/main.ts', env: { ...journeyEnv } }
]
const ROUTES = [
  { name: 'GET /', path: '/', lua: undefined as string | undefined },
  { name: 'POST /echo 1 KiB', path: '/echo', lua: 'post' }
]

const dir = mkdtempSync(join(tmpdir(), 'journey-bench-'))
const body = JSON.stringify({ message: 'x'.repeat(1000) })
writeFileSync(join(dir, 'post.lua'), `wrk.method = "POST"\nwrk.body = '${body}'\nwrk.headers["Content-Type"] = "application/json"\n`)

// A local OTLP/HTTP receiver on the load generator's core, answering 200 to everything.
const receiver = spawn('taskset', ['-c', '1', process.execPath, '-e',
  "require('http').createServer((q,r)=>{q.resume();q.on('end',()=>r.end('{}'))}).listen(4318,'127.0.0.1')"], { stdio: 'ignore' })

function cpuTicks (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14, 15)
}
function rssMb (pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

const PORT = 3100
async function startVariant (v: Variant): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn('taskset', ['-c', '0', process.execPath, join(root, v.script)], {
    env: { PATH: process.env.PATH, HTTP_PORT: String(PORT), HOST: '127.0.0.1', ...v.env }, stdio: ['ignore', 'ignore', 'inherit']
  })
  for (let i = 0; i < 300; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
    if (child.exitCode !== null) break
    try {
      execFileSync('curl', ['-sf', '-o', '/dev/null', `http://127.0.0.1:${PORT}/`])
      return { child, port: PORT }
    } catch { /* not listening yet */ }
  }
  throw new Error(`${v.name} did not start`)
}

function wrk (url: string, seconds: number, lua?: string): { rps: number, p50: number, p99: number } {
  const args = ['-c', '1', 'wrk', '-t1', '-c50', `-d${seconds}s`, '--latency', ...(lua === undefined ? [] : ['-s', join(dir, `${lua}.lua`)]), url]
  const out = execFileSync('taskset', args, { encoding: 'utf8' })
  const unit = (v: string, u: string): number => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : 1)
  const lat = (p: string): number => { const m = new RegExp(`${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out); return m === null ? NaN : unit(m[1]!, m[2]!) }
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), p50: lat('50'), p99: lat('99') }
}

interface Sample { variant: string, route: string, rps: number, rpsPerCpuSecond: number, cpuShare: number, p50Ms: number, p99Ms: number, peakRssMb: number }
const samples: Sample[] = []
await new Promise(resolve => setTimeout(resolve, 300))
for (let round = 1; round <= ROUNDS; round++) {
  for (const v of VARIANTS) {
    const { child, port } = await startVariant(v)
    for (const r of ROUTES) {
      const url = `http://127.0.0.1:${port}${r.path}`
      wrk(url, 1, r.lua) // warm-up: JIT, pools
      const t0 = cpuTicks(child.pid!)
      const w0 = performance.now()
      const res = wrk(url, DURATION, r.lua)
      const cpuSeconds = (cpuTicks(child.pid!) - t0) / CLK_TCK
      const wall = (performance.now() - w0) / 1000
      const s: Sample = {
        variant: v.name, route: r.name, rps: res.rps, rpsPerCpuSecond: (res.rps * wall) / cpuSeconds,
        cpuShare: cpuSeconds / wall, p50Ms: res.p50, p99Ms: res.p99, peakRssMb: rssMb(child.pid!)
      }
      samples.push(s)
      process.stdout.write(`round ${round}/${ROUNDS}  ${v.name.padEnd(28)} ${r.name.padEnd(18)} ${s.rps.toFixed(0).padStart(7)} req/s  ` +
        `${s.rpsPerCpuSecond.toFixed(0).padStart(7)} req/CPU-s  server CPU ${(s.cpuShare * 100).toFixed(0)}%\n`)
    }
    child.kill('SIGTERM')
    await new Promise(resolve => child.once('exit', resolve))
  }
}
receiver.kill()

const median = (xs: number[]): number => { const a = [...xs].sort((x, y) => x - y); return a[Math.floor(a.length / 2)]! }
const rows = []
for (const r of ROUTES) {
  // Windows where the server did not get 90% of its core say more about the machine than the variant.
  const kept = (v: string): Sample[] => samples.filter(s => s.variant === v && s.route === r.name && s.cpuShare >= 0.9)
  const bare = median(kept('bare').map(s => s.rpsPerCpuSecond))
  for (const v of VARIANTS) {
    const k = kept(v.name)
    const all = samples.filter(s => s.variant === v.name && s.route === r.name)
    rows.push({
      variant: v.name, route: r.name, windows: `${k.length}/${all.length}`,
      rps: Math.round(median(k.map(s => s.rps))),
      rpsPerCpuSecond: Math.round(median(k.map(s => s.rpsPerCpuSecond))),
      ratio: Number((median(k.map(s => s.rpsPerCpuSecond)) / bare).toFixed(2)),
      p50Ms: median(k.map(s => s.p50Ms)), p99Ms: median(k.map(s => s.p99Ms)),
      peakRssMb: Math.round(Math.max(...all.map(s => s.peakRssMb)))
    })
  }
}
console.log(`\nNode ${process.version}, ${ROUNDS} rounds × ${DURATION} s, wrk -t1 -c50; ratio = requests per server CPU-second vs bare (median of windows where the server had ≥ 90% of its core)`)
console.table(rows)
writeFileSync(join(root, 'bench', 'results', 'latest.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, rounds: ROUNDS, durationS: DURATION, rows }, null, 2) + '\n')
