// npm run bench:latency: what each variant adds to a request's latency at a fixed request rate, the way a
// server meets real traffic — not as fast as it can answer.
//
// Why: npm run bench measures throughput at saturation, where every variant's latency is mostly queueing
// behind 50 connections, so its p99 says how saturated the server was, not what the telemetry did to a
// request. Here every variant gets the same paced load (wrk with a random wait before each request,
// paced.ts), a rate every variant carries (the slowest, the usual setup at 100 %, at two thirds to four
// fifths of its core): a variant's percentiles against bare's are what it costs a client — its per-request
// work at the median, its pauses (an export batch encoded on the serving thread, a garbage collection) in
// the tail.
//
//   npm run bench:latency          # bare, journey-metrics, journey-1pct, journey-100pct, usual-100pct; GET /, POST /echo, HTTPS; 4,000 req/s; 2 rounds (≈ 10 min)
//   VARIANTS=bare,journey-100pct ROUTES=get RATE=8000 SECONDS=20 ROUNDS=3 npm run bench:latency
//
// Each measurement is a fresh server on CPU 0 (as npm run bench starts them), warmed by wrk at full load so
// V8 has compiled what it will, then paced at RATE requests a second from CONNECTIONS keep-alive
// connections for WARMUP_S s (not counted) and SECONDS s, wrk and the OTLP receiver on CPU 1. Variants are
// interleaved (their order rotated every round), so drift meets every variant alike; each figure is the
// median of the rounds', and beside the p99 their range.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { paced } from './paced.ts'
import { holdIdle } from './idle.ts'
import { benchRoutes, childrenKilledAtExit, CLK_TCK, cpuTicks, machine, NODE_FLAGS, requireTools, root, startReceiver, startServer, stopChild } from './servers.ts'
import { variantsFrom } from './variants.ts'
import { median } from './stats.ts'
import { wrk } from './wrk.ts'

requireTools(['wrk', 'taskset'])
const variants = variantsFrom(process.env.VARIANTS, 'bare,journey-metrics,journey-1pct,journey-100pct,usual-100pct')
const ROUNDS = Number(process.env.ROUNDS ?? 2)
const RATE = Number(process.env.RATE ?? 4000)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50)
const SECONDS = Number(process.env.SECONDS ?? 10)
// Paced before the measured seconds: after the flat-out warm-up every variant's p99 read about twice its
// steady level for the first 3 s of paced load, and the sampled variants' for up to 6 (bench/NOTES.md,
// seventy-second session); with 2 s the measured window held that settling, most of all the sampled variants'.
const WARMUP_S = Number(process.env.WARMUP_S ?? 6)
// wrk at full load first: a process serves its first seconds slower while V8 compiles (bench/NOTES.md).
const WARM_S = Number(process.env.WARM_S ?? 3)

// The SDK's default batch delay (5 s), as a deployed server has it, rather than npm run bench's 200 ms (which
// makes its windows' spans arrive within them, and sends a sampled variant's partial batches 25 times as often).
const EXPORT_DELAY = { OTEL_BSP_SCHEDULE_DELAY: process.env.OTEL_BSP_SCHEDULE_DELAY ?? '5000' }

const dir = mkdtempSync(join(tmpdir(), 'journey-latency-'))
const routeKeys = (process.env.ROUTES ?? 'get,post,https').split(',')
const routes = benchRoutes(dir).filter(r => routeKeys.includes(r.key) && !r.key.endsWith('-close') && r.http2 !== true)
if (routes.length === 0) throw new Error('ROUTES: one or more of get, post, https')

const children = childrenKilledAtExit()
startReceiver(children) // the sampled variants export to it
const idle = holdIdle()
console.log(`${idle.description}; ${RATE} requests/s from ${CONNECTIONS} connections, ${SECONDS} s a measurement, ${ROUNDS} rounds`)

type Measured = Awaited<ReturnType<typeof paced>> & { cpuShare: number }
const cells = new Map<string, Measured[]>()

for (let round = 1; round <= ROUNDS; round++) {
  const order = variants.map((_, i) => variants[(i + round - 1) % variants.length]!)
  for (const r of routes) {
    const load = { url: r.url(0), rate: RATE, connections: CONNECTIONS, base: r.lua === undefined ? '' : readFileSync(r.lua, 'utf8'), script: join(dir, 'paced.lua') }
    for (const v of order) {
      const server = await startServer(v, 0, { flags: NODE_FLAGS, env: EXPORT_DELAY, stdout: join(dir, `server-${v}-${round}-${r.key}.out`), children })
      await wrk(r.url(0), WARM_S, r.lua)
      await paced({ ...load, seconds: WARMUP_S })
      const ticks = cpuTicks(server.pid!)
      const started = performance.now()
      const result = await paced({ ...load, seconds: SECONDS })
      // How busy this pace kept the server: its CPU over the measured load.
      const cpuShare = (cpuTicks(server.pid!) - ticks) / CLK_TCK / ((performance.now() - started) / 1000)
      await stopChild(server)
      const key = `${v}\t${r.name}`
      cells.set(key, [...(cells.get(key) ?? []), { ...result, cpuShare }])
      console.log(`round ${round}/${ROUNDS}  ${v.padEnd(22)} ${r.name.padEnd(17)} ${result.rps.toFixed(0)} req/s  p50 ${result.p50Ms.toFixed(2)}  p99 ${result.p99Ms.toFixed(2)}  p99.9 ${result.p999Ms.toFixed(2)}  max ${result.maxMs.toFixed(2)} ms  ${result.errors} errors  server ${(100 * cpuShare).toFixed(0)}% of CPU 0  ${process.uptime().toFixed(0)} s`)
    }
  }
}
idle.release()

const ms = (x: number): number => Math.round(x * 100) / 100
const rows = [...cells].map(([key, rounds]) => {
  const [variant, route] = key.split('\t') as [string, string]
  const med = (f: (m: Measured) => number): number => median(rounds.map(f))
  return {
    variant,
    route,
    rate: RATE,
    rps: Math.round(med(m => m.rps)),
    errors: rounds.reduce((n, m) => n + m.errors, 0),
    p50Ms: ms(med(m => m.p50Ms)),
    p90Ms: ms(med(m => m.p90Ms)),
    p99Ms: ms(med(m => m.p99Ms)),
    p99MsRange: [ms(Math.min(...rounds.map(m => m.p99Ms))), ms(Math.max(...rounds.map(m => m.p99Ms)))],
    p999Ms: ms(med(m => m.p999Ms)),
    maxMs: ms(Math.max(...rounds.map(m => m.maxMs))),
    serverCpuShare: Math.round(100 * med(m => m.cpuShare)) / 100
  }
})
// The table bench/README.md shows, as printed: a route's variants together, bare first.
console.log('\n| route | variant | req/s | p50 | p90 | p99 (rounds) | p99.9 | max | server CPU |\n|---|---|---:|---:|---:|---:|---:|---:|---:|')
for (const r of [...rows].sort((a, b) => routes.findIndex(x => x.name === a.route) - routes.findIndex(x => x.name === b.route))) {
  console.log(`| ${r.route} | ${r.variant} | ${r.rps} | ${r.p50Ms} | ${r.p90Ms} | **${r.p99Ms}** (${r.p99MsRange.join('–')}) | ${r.p999Ms} | ${r.maxMs} | ${Math.round(100 * r.serverCpuShare)} % |`)
}
// OUT: another file for a quick look (the test's), so the committed run stays the one bench/README.md discusses.
const out = process.env.OUT ?? join(root, 'bench', 'results', 'latency.json')
writeFileSync(out, JSON.stringify({
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  method: `${ROUNDS} rounds, variants in an order rotated every round, a fresh server for each measurement (node ${NODE_FLAGS.join(' ') || 'without flags'}, compiled to JavaScript, bench/compile.ts) on CPU 0, warmed by wrk -t1 -c50 flat out for ${WARM_S} s; ` +
    `then wrk -t1 -c${CONNECTIONS} paced at ${RATE} requests/s (each connection waits a random time, exponential with mean ${1000 * CONNECTIONS / RATE} ms, before each request: bench/paced.ts), ${WARMUP_S} s not counted and ${SECONDS} s measured, wrk and the OTLP receiver on CPU 1; ${idle.description}. ` +
    'Each figure the median of the rounds\' (wrk\'s latency histogram: request written to response read); p99MsRange: the rounds\' p99s; maxMs: the highest of any round; serverCpuShare: the server\'s share of CPU 0 during the measured load.',
  rows
}, null, 2) + '\n')
console.log(`wrote ${out}; the run took ${process.uptime().toFixed(0)} s`)
// The receiver's IPC channel would keep this process alive.
for (const c of children) c.kill('SIGKILL')
