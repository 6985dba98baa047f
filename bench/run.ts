// npm run bench: what per-stage telemetry costs, next to the usual OpenTelemetry and Prometheus set-ups, in
// one run. Not a test: it prints figures, writes bench/results/latest.json and regenerates the README table
// (a quicker run — fewer variants, rounds or seconds — writes bench/results/partial.json instead).
//
// Every variant is bench/server.ts: the same Fastify app and routes, instrumented one way. Every round
// starts all variants afresh, each on its own ports, and warms them together, so every one is measured warm
// and at the same age (V8 keeps growing a young process's heap for tens of seconds; a variant measured
// seconds after its start would be caught mid-growth), and each round's figure comes from other processes.
// The servers run on CPU 0; wrk and the local OTLP/HTTP receiver on CPU 1. The figure that matters is
// requests per *server CPU-second* (utime + stime from /proc/PID/stat), as a ratio to bare measured in the
// same seconds (paired.ts). Variants go in an order rotated every round; windows in which the servers
// got less than 90% of the core are dropped (and counted) rather than averaged in. Each server says at the end
// of its round whether V8 left its process.nextTick slow (tick-state.ts): counted per variant, not left out.
//
// The CPUs are held in polling idle for the run (idle.ts says why; BENCH_IDLE=halt measures without).
//
// Options (ROUNDS, DURATION, VARIANTS, ROUTES, BENCH_NODE_FLAGS, BENCH_IDLE) and what the figures mean: bench/README.md.
import { execFileSync, type ChildProcess } from 'node:child_process'
import { setTimeout as pause } from 'node:timers/promises'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { VARIANTS, type VariantName } from './variants.ts'
import { renderTable, type BenchMeta, type BenchRow } from './table.ts'
import { wrk } from './wrk.ts'
import type { TickState } from './tick-state.ts'
import { benchRoutes, childrenKilledAtExit, CLK_TCK, cpuTicks, DEFAULT_ROUTES, machine, NODE_FLAGS, peakRssMb, requireTools, root, startReceiver, startServer, stopServers, type BenchRoute } from './servers.ts'
import { paired, pairedKept, type Paired } from './paired.ts'
import { median } from './stats.ts'
import { holdIdle } from './idle.ts'

requireTools()
// The full run's: a run with fewer rounds or shorter windows is a partial one (below).
const FULL = { rounds: 3, duration: 2 }
const ROUNDS = Number(process.env.ROUNDS ?? FULL.rounds)
const DURATION = Number(process.env.DURATION ?? FULL.duration)
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
// Only a run of every variant, at least as long as the default, is the one the README's table shows (its
// figures are discussed there): a quicker look writes results/partial.json and leaves the table alone.
const dir = mkdtempSync(join(tmpdir(), 'journey-bench-'))
const routeKeys = process.env.ROUTES?.split(',') ?? DEFAULT_ROUTES
// HTTP/2 routes are bench:ab's: most variants are not measured on HTTP/2 (variants.ts, HTTP2_VARIANTS).
const ROUTES = benchRoutes(dir).filter(r => routeKeys.includes(r.key) && r.http2 !== true)
if (ROUTES.length !== routeKeys.length) throw new Error(`ROUTES: some of ${benchRoutes(dir).filter(r => r.http2 !== true).map(r => r.key).join(', ')} (HTTP/2: npm run bench:ab)`)
const partial = variants.length < VARIANTS.length || ROUNDS < FULL.rounds || DURATION < FULL.duration ||
  ROUTES.map(r => r.key).join() !== DEFAULT_ROUTES.join()

// Eighteen servers pinned to one core, and the receiver, must not outlive a bench that failed half-way.
const children = childrenKilledAtExit()
const { received } = startReceiver(children)
const idle = holdIdle()
console.log(idle.description)

// Variant i runs in slot 2i, its bare twin in 2i + 1 (servers.ts's portsOf). Each server's stdout goes to a
// file: at the end of its round it prints there whether V8 left it slow.
const stdoutOf = new Map<ChildProcess, string>()
let serversStarted = 0
async function startVariant (v: VariantName, slot: number): Promise<ChildProcess> {
  const out = join(dir, `server-${serversStarted++}-${v}.out`)
  const child = await startServer(v, slot, { flags: NODE_FLAGS, stdout: out, children })
  stdoutOf.set(child, out)
  return child
}

/** A variant alone on its core: requests/s, latency, what it exported per request. */
interface Solo { rps: number, rpsPerCpuSecond: number, cpuShare: number, p50Ms: number, p99Ms: number, otlpBytesPerRequest: number, otlpSpansPerRequest: number, errors: number }
interface Sample {
  variant: VariantName, route: string, round: number, solo?: Solo, paired?: Paired, peakRssMb: number
  /** Which process of the pair V8 left in the slow nextTick state (tick-state.ts), known when its round ends. */
  slow?: 'variant' | 'twin' | 'both'
}
/** Spans per request of the 100 %-sampled variants when nothing can be lost (spansUnloaded()), by variant and route. */
const unloaded = new Map<string, number>()
const samples: Sample[] = []
const started = Date.now()

async function solo (child: ChildProcess, r: BenchRoute, slot: number): Promise<Solo> {
  await pause(400) // let the previous window's last batch leave before counting
  const before = await received()
  const t0 = cpuTicks(child.pid!)
  const w0 = performance.now()
  const res = await wrk(r.url(slot), DURATION, r.lua)
  const cpuSeconds = (cpuTicks(child.pid!) - t0) / CLK_TCK
  const wall = (performance.now() - w0) / 1000
  await pause(400) // the window's last partial batch leaves after OTEL_BSP_SCHEDULE_DELAY (200 ms)
  const after = await received()
  return {
    rps: res.rps,
    rpsPerCpuSecond: res.requests / cpuSeconds,
    cpuShare: cpuSeconds / wall,
    p50Ms: res.p50,
    p99Ms: res.p99,
    otlpBytesPerRequest: (after.bytes - before.bytes) / res.requests,
    otlpSpansPerRequest: (after.spans - before.spans) / res.requests,
    errors: res.errors
  }
}

// How many spans a request makes when nothing is lost: 200 requests one after another over one keep-alive
// connection (curl, on the load generator's core), for the variants that sample every request. The solo
// window's spans per request against this say whether the export pipeline kept up under load.
async function spansUnloaded (slot: number, r: BenchRoute): Promise<number> {
  const n = 200
  // The warm-up's last spans are still on their way (at 100 % a full queue takes a while): wait until none
  // arrive for 0.6 s, or give up after 20 s (the count is then NaN: the table shows no "of N").
  let before = await received()
  let quiet = 0
  for (let tries = 0; quiet < 3 && tries < 100; tries++) {
    await pause(200)
    const now = await received()
    quiet = now.spans === before.spans ? quiet + 1 : 0
    before = now
  }
  if (quiet < 3) return NaN
  const out = execFileSync('taskset', ['-c', '1', 'curl', '-sk', '-w', '%{http_code}\\n', ...r.curl,
    ...Array.from({ length: n }, () => ['-o', '/dev/null', r.url(slot)]).flat()], { encoding: 'utf8' })
  const ok = out.split('\n').filter(code => code.startsWith('2')).length
  await pause(400)
  return ok === n ? ((await received()).spans - before.spans) / n : NaN
}

await pause(300)
// Every variant, bare included, gets its own bare twin: started with it, warmed with it, idle with it and
// measured with it. A single bare server paired with every variant in turn would be the only server never
// left idle, and a second bare server treated like a variant measured 0.78–0.93 against it (an idle server
// came back slower: V8's memory reducer, now off, see NODE_FLAGS). With twins, whatever idling still costs
// is paid on both sides; bare's own row (bare against its twin) shows what is left, the method's error bar.
interface Pair { v: VariantName, slot: number, twin: number, proc: ChildProcess, twinProc: ChildProcess }
// Fresh pairs every round. A process can land slower for its whole life — ≈ 10–60 % more CPU per request,
// on every route, for no reason its code explains (NOTES.md: seen in most full runs, a different variant
// each time, bare twins included) — so the median over rounds of one process pair per variant still
// printed that one process. Over three pairs it takes two slow ones to move the median.
async function startPairs (): Promise<Pair[]> {
  // Two pairs at a time: start-up is CPU-bound (≈ 1 s of CPU a server), and all 18 at once thrashed the two
  // cores (12.7–17.8 s for a round's servers against 11.1–11.6), time the ten-minute run does not have.
  const fresh: Pair[] = []
  for (let i = 0; i < variants.length; i += 2) {
    fresh.push(...await Promise.all(variants.slice(i, i + 2).map(async (v, j) => {
      const slot = 2 * (i + j)
      const [proc, twinProc] = await Promise.all([startVariant(v, slot), startVariant('bare', slot + 1)])
      return { v, slot, twin: slot + 1, proc, twinProc }
    })))
  }
  // A fresh process serves its first seconds of load at about half speed (measured here: 45 µs per request
  // in its first 5 s, 22 once hot) while V8 optimizes and grows its heap. So every pair gets 3 s of all three
  // routes before its round, and each window below 2 s of its own load first: 5 s before the first counts.
  // (4 s when servers lived for the whole run; 3 s keeps three generations of servers within 10 minutes.)
  for (const p of fresh) await Promise.all([p.slot, p.twin].flatMap(slot => ROUTES.map(r => wrk(r.url(slot), 3, r.lua, 16))))
  return fresh
}
/** Ends a round's servers, each first asked whether V8 left it slow (servers.ts). */
async function stopPairs (stopping: Pair[]): Promise<Map<ChildProcess, TickState>> {
  return await stopServers(stopping.flatMap(p => [p.proc, p.twinProc]), c => stdoutOf.get(c)!)
}
let unknownStates = 0
let pairs = await startPairs()
// The servers not being measured are stopped (SIGSTOP) meanwhile. Idle, they still woke CPU 0 hundreds of
// times a second between them (prom-client's event-loop-delay monitor ticks every 10 ms in each variant
// that collects default metrics; batch processors' timers), pre-empting the pair being measured.
function freezeOthers (measured: ChildProcess[]): () => void {
  const others = pairs.flatMap(p => [p.proc, p.twinProc]).filter(c => !measured.includes(c))
  for (const c of others) c.kill('SIGSTOP')
  return () => { for (const c of others) c.kill('SIGCONT') }
}
for (const p of pairs) {
  if (!p.v.endsWith('100pct')) continue
  for (const r of ROUTES) unloaded.set(`${p.v} ${r.name}`, await spansUnloaded(p.slot, r))
}
for (let round = 1; round <= ROUNDS; round++) {
  if (round > 1) pairs = await startPairs()
  // Rotated each round, so no variant always follows the same neighbour.
  const order = pairs.map((_, i) => pairs[(i + round - 1) % pairs.length]!)
  for (const r of ROUTES) {
    for (const { v, slot, twin, proc, twinProc } of order) {
      const thaw = freezeOthers([proc, twinProc])
      await Promise.all([wrk(r.url(twin), 2, r.lua, 25), wrk(r.url(slot), 2, r.lua, 25)])
      await pause(400)
      const p = await paired(twinProc, r.url(twin), proc, r.url(slot), r.load, DURATION)
      // Requests/s, latency and OTLP bytes alone on the core: from one round only, to stay within 10 minutes,
      // and the last one, when every server is oldest (in round 1 the first route meets processes seconds
      // old, and the heavy variants read far slower then).
      const s = round < ROUNDS ? undefined : await solo(proc, r, slot)
      thaw()
      samples.push({ variant: v, route: r.name, round, paired: p, ...(s === undefined ? {} : { solo: s }), peakRssMb: peakRssMb(proc.pid!) })
      process.stdout.write(`round ${round}/${ROUNDS}  ${v.padEnd(22)} ${r.name.padEnd(17)} ratio ${p.ratio.toFixed(2)}  ` +
        `both servers ${(p.cpuShare * 100).toFixed(0).padStart(3)}% of CPU 0, host steal ${(p.hostSteal * 100).toFixed(1).padStart(4)}%` +
        (s === undefined ? '' : `  alone: ${s.rps.toFixed(0).padStart(6)} req/s ${s.rpsPerCpuSecond.toFixed(0).padStart(6)} req/CPU-s`) +
        (p.errors + (s?.errors ?? 0) > 0 ? `  ${p.errors + (s?.errors ?? 0)} ERRORS (window dropped)` : '') +
        `  ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
    }
  }
  const states = await stopPairs(pairs)
  const slow: string[] = []
  for (const p of pairs) {
    const v = states.get(p.proc) === 'slow'
    const t = states.get(p.twinProc) === 'slow'
    unknownStates += [p.proc, p.twinProc].filter(c => states.get(c) === 'unknown').length
    if (!v && !t) continue
    slow.push(v && t ? `${p.v} and its twin` : v ? p.v : `${p.v}'s bare twin`)
    for (const s of samples) if (s.round === round && s.variant === p.v) s.slow = v && t ? 'both' : v ? 'variant' : 'twin'
  }
  if (slow.length > 0) console.log(`round ${round}: V8 left ${slow.join(', ')} slow (nextTick's inline caches megamorphic, tick-state.ts)`)
}
if (unknownStates > 0) console.warn(`${unknownStates} servers did not say whether V8 left them slow (tick-state.ts): not counted`)
const { undecodable } = await received()
if (undecodable > 0) console.warn(`the receiver could not decode ${undecodable} export requests as OTLP protobuf: span counts are low`)
for (const c of children) c.kill('SIGKILL')

const round2 = (x: number): number => Math.round(x * 100) / 100
const rows: BenchRow[] = []
for (const r of ROUTES) {
  for (const v of variants) {
    const all = samples.filter(s => s.variant === v && s.route === r.name)
    // Windows that did not measure serving (paired.ts says which) are dropped, and counted in windowsKept.
    const kept = all.flatMap(s => s.paired !== undefined && pairedKept(s.paired) ? [s.paired] : [])
    const ratios = kept.map(p => p.ratio)
    const us = (f: (p: Paired) => number): number => round2(median(kept.map(f)))
    const pairWindows = all.filter(s => s.paired !== undefined).length
    const alone = all.flatMap(s => s.solo !== undefined && s.solo.cpuShare >= 0.9 && s.solo.errors === 0 ? [s.solo] : [])
    rows.push({
      variant: LABEL[v],
      route: r.name,
      rps: Math.round(median(alone.map(s => s.rps))),
      rpsPerCpuSecond: Math.round(median(alone.map(s => s.rpsPerCpuSecond))),
      ratio: round2(median(ratios)),
      ratioMin: round2(Math.min(...ratios)),
      ratioMax: round2(Math.max(...ratios)),
      p50Ms: round2(median(alone.map(s => s.p50Ms))),
      p99Ms: round2(median(alone.map(s => s.p99Ms))),
      peakRssMb: Math.round(Math.max(...all.map(s => s.peakRssMb))),
      windowsKept: `${ratios.length}/${pairWindows} paired, ${alone.length}/${all.filter(s => s.solo !== undefined).length} alone`,
      // Counted, not left out: how often it happens depends on what the process runs (tick-state.ts).
      slowProcesses: all.filter(s => s.slow === 'variant' || s.slow === 'both').length,
      slowTwins: all.filter(s => s.slow === 'twin' || s.slow === 'both').length,
      userUs: us(p => p.userUs),
      kernelUs: us(p => p.kernelUs),
      twinUserUs: us(p => p.twinUserUs),
      twinKernelUs: us(p => p.twinKernelUs),
      addedUserUs: us(p => p.userUs - p.twinUserUs),
      addedKernelUs: us(p => p.kernelUs - p.twinKernelUs),
      // A window whose wrk could not be read (NaN) has no say.
      sleepsPerResponse: round2(median(kept.map(p => p.sleepsPerResponse).filter(Number.isFinite))),
      twinSleepsPerResponse: round2(median(kept.map(p => p.twinSleepsPerResponse).filter(Number.isFinite))),
      otlpBytesPerRequest: Math.round(median(alone.map(s => s.otlpBytesPerRequest))),
      otlpSpansPerRequest: round2(median(alone.map(s => s.otlpSpansPerRequest))),
      spansPerRequestUnloaded: round2(unloaded.get(`${v} ${r.name}`) ?? NaN)
    })
  }
}
const meta: BenchMeta = {
  date: new Date().toISOString().slice(0, 10),
  machine: machine(),
  method: `${ROUNDS} rounds, variants in an order rotated every round; every round starts every server afresh (node ${NODE_FLAGS.join(' ') || 'without flags'}; each holds one nextTick object for good, src/tick-shape.ts), servers compiled to JavaScript and run without the TypeScript stripper (bench/compile.ts) on CPU 0, wrk -t1 ${ROUTES.some(r => r.key.endsWith('-close')) ? '(keep-alive, or a new connection per request on the routes that say so)' : 'keep-alive'} and the OTLP receiver on CPU 1; ${idle.description}. ` +
    `Every server first gets 3 s of all routes; while a pair is measured, every other server is stopped (SIGSTOP). Ratio: the variant and its bare twin loaded at the same time for ${DURATION} s (25 connections each, after 2 s of the same load), requests per server CPU-second of the variant / of the twin; ` +
    'each variant has its own bare twin, started, warmed and idle with it; median (and range) over rounds, so over as many process pairs; bare\'s own row is bare against its twin: the method\'s noise. ' +
    `req/CPU-s, p99 and OTLP spans and bytes: the variant alone on the core right after, last round (${DURATION} s, 50 connections); "of N": the spans of the same requests one at a time, before any load. Windows where the servers had < 90% of the core, or with any error response, dropped. ` +
    'Peak RSS: the highest VmHWM of the variant\'s processes'
}
console.table(rows)
const results = partial ? 'partial' : 'latest'
writeFileSync(join(root, 'bench', 'results', `${results}.json`), JSON.stringify(rows, null, 2) + '\n')
writeFileSync(join(root, 'bench', 'results', `${results}.meta.json`), JSON.stringify(meta, null, 2) + '\n')

// The README's performance table is generated from these files (test/bench-table.test.ts checks it).
const readme = join(root, 'README.md')
const text = readFileSync(readme, 'utf8')
const begin = '<!-- bench:begin -->'
const end = '<!-- bench:end -->'
if (partial) {
  console.log(`a partial run (${variants.length} of ${VARIANTS.length} variants, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} of ${DURATION} s${process.env.ROUTES === undefined ? '' : `, routes ${ROUTES.map(r => r.key).join(', ')}`}): bench/results/partial.json; latest.json and the README's table are left as they were`)
} else if (text.includes(begin) && text.includes(end)) {
  writeFileSync(readme, text.slice(0, text.indexOf(begin) + begin.length) + '\n' + renderTable(rows, meta) + text.slice(text.indexOf(end)))
  console.log('README.md performance table updated')
}
// Issue 8 asks for the whole run in under ten minutes on the 2-core machine: say how long this one took.
console.log(`the run took ${process.uptime().toFixed(0)} s`)
