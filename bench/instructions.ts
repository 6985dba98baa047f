// npm run bench:instructions: what each variant costs in machine instructions per request, counted by
// valgrind's callgrind. Not a test, and not a replacement for npm run bench (which measures CPU time, the
// cost that matters); a count that does not drift.
//
// Why: on this machine CPU time per request moves by ±10 % between processes of the same code, so npm run
// bench cannot tell a 3 % change from noise without many runs. callgrind counts the instructions every
// thread of the server executes (JIT-compiled code, V8's runtime and GC, Node, libuv; not the kernel),
// and the same code under the same requests counts within a few per cent every time. It also says where
// the added instructions are: JavaScript by function (named through node --perf-basic-prof), builtins and
// native code by symbol. Instructions are not time — a clock read is ≈ 120 instructions and 35 ns here, and
// V8, watching a program run fifty times slower under valgrind, does not always compile what it runs
// outside, nor collect garbage as often (it sizes the young generation from throughput) — so a change is
// judged on the CPU-time bench (bench/README.md says what a 40 % cut in the journey's counted
// instructions bought there: 1–2 % at most).
//
//   npm run bench:instructions                          # bare, journey-metrics, prom-client-histogram; GET / and POST /echo
//   VARIANTS=journey-metrics,journey-1pct ROUTES=get npm run bench:instructions
//   REQUESTS=5000 WINDOWS=5 TOP=20 npm run bench:instructions
//   CACHE_SIM=1 VARIANTS=journey-metrics,prom-client-histogram ROUTES=get npm run bench:instructions
//   VARIANTS=journey-metrics ROUTES=get-close WINDOWS=11 WARMUP=5000 REQUESTS=2000 npm run bench:instructions
//   VARIANTS=journey-metrics ROUTES=h2,h2-post WINDOWS=3 WARMUP=10000 REQUESTS=2000 npm run bench:instructions
//
// CACHE_SIM=1 also simulates the caches (callgrind --cache-sim=yes) and prints data cache misses per request
// beside the instructions, and where they differ from bare. Why: equal instruction counts can still cost
// different time when one variant touches more memory, and this machine's perf has no hardware cache
// counters. The first level is the host's (valgrind reads it from cpuid: 48 KiB, 12-way here); callgrind
// simulates only one more level, and this VM's cpuid reports a 512 MB L3 that nothing would miss, so that
// level is set to a 1 MiB 8-way cache, an L2's size (CACHE_LL="size,assoc,line" to change it). The
// simulation is a model (no prefetcher, one core, no other process), so a miss count compares variants;
// it is not the real machine's.
//
// Every variant is bench/server.ts, compiled as npm run bench runs it (compile.ts), under `valgrind
// --tool=callgrind --instr-atstart=no`, with V8 compiling optimized code on the main thread
// (--no-concurrent-recompilation): valgrind runs one thread at a time,
// and a background compile job got so little of it that hot code stayed in the lower tiers for thousands of
// requests. The compiler's instructions are counted either way. It is warmed
// uncounted, then counted over WINDOWS windows of REQUESTS requests each (10 keep-alive connections, one
// discarded window first), and the figure is the median window's instructions per request. Writes
// bench/results/instructions.json (cache-sim.json with CACHE_SIM=1); a run with fewer variants, routes,
// windows or requests than the run bench/README.md quotes writes instructions-partial.json (cache-sim-partial.json).
import { spawn, execFileSync } from 'node:child_process'
import { setTimeout as pause } from 'node:timers/promises'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { HTTP2_VARIANTS, variantsFrom, type VariantName } from './variants.ts'
import { childrenKilledAtExit, POST_BODY, root } from './servers.ts'
import { callgrindEvents, costDiff, functionCosts, parsePerfMap } from './callgrind.ts'
import { compiledServer, NO_STRIPPER } from './compile.ts'
import { median } from './stats.ts'

// The default run's settings: bench/README.md's instruction table quotes a run with these (or more).
const FULL = { requests: 5000, windows: 5, warmup: 20000, variants: 'journey-metrics,prom-client-histogram', routes: 'get,post' }
const REQUESTS = Number(process.env.REQUESTS ?? FULL.requests)
const WINDOWS = Number(process.env.WINDOWS ?? FULL.windows)
const WARMUP = Number(process.env.WARMUP ?? FULL.warmup)
const TOP = Number(process.env.TOP ?? 15)
const CACHE_SIM = process.env.CACHE_SIM === '1'
const CACHE_LL = process.env.CACHE_LL ?? '1048576,8,64'
const only = variantsFrom(process.env.VARIANTS, FULL.variants)
const variants: VariantName[] = ['bare', ...only.filter(v => v !== 'bare')]
const ROUTES = [
  { key: 'get', name: 'GET /', path: '/', method: 'GET' as const, body: undefined },
  { key: 'post', name: 'POST /echo 1 KiB', path: '/echo', method: 'POST' as const, body: POST_BODY },
  // Not in the default set: a connection per request (undici's `reset` sends `Connection: close` and
  // reconnects), so a window counts what a connection costs — its accept, record, metrics and close —
  // beside its one request, as npm run bench's get-close route measures in time.
  { key: 'get-close', name: 'GET /, new conn.', path: '/', method: 'GET' as const, body: undefined, reset: true },
  // Not in the default set: GET / and POST /echo over HTTP/2 with TLS, on bench/server.ts's HTTP/2 app
  // (BENCH_HTTP2), as bench:ab's h2 routes; undici speaks h2 to it, its streams on the same 10 connections.
  { key: 'h2', name: 'GET / over h2', path: '/', method: 'GET' as const, body: undefined, http2: true },
  { key: 'h2-post', name: 'POST /echo h2', path: '/echo', method: 'POST' as const, body: POST_BODY, http2: true }
].filter(r => (process.env.ROUTES ?? FULL.routes).split(',').includes(r.key))
type Route = typeof ROUTES[number]
// One server per variant and protocol: the HTTP/2 app serves only HTTP/2 (and HTTP/1.1 over its TLS port).
const PROTOCOLS = [ROUTES.filter(r => !('http2' in r)), ROUTES.filter(r => 'http2' in r)].filter(g => g.length > 0)
const refused = ROUTES.some(r => 'http2' in r) ? only.filter(v => !HTTP2_VARIANTS.includes(v)) : []
if (refused.length > 0) {
  console.error(`${refused.join(', ')}: not measured on HTTP/2 (bench/variants.ts says why); one of ${HTTP2_VARIANTS.join(', ')}`)
  process.exit(1)
}

for (const tool of ['valgrind', 'callgrind_control', 'callgrind_annotate']) {
  try { execFileSync('which', [tool], { stdio: 'ignore' }) } catch {
    console.error(`${tool} not found: apt-get install -y valgrind (Debian's valgrind has callgrind)`)
    process.exit(1)
  }
}

const dir = mkdtempSync(join(tmpdir(), 'journey-instructions-'))
const children = childrenKilledAtExit()
// The sampled variants export to a receiver, as in npm run bench (an exporter that fails costs differently).
if (variants.some(v => v === 'journey-1pct' || v === 'journey-100pct' || v.startsWith('usual'))) {
  children.push(spawn(process.execPath, [join(root, 'bench', 'receiver.ts')], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }))
}

async function request (pool: Pool, r: Route): Promise<void> {
  const res = await pool.request({ path: r.path, method: r.method, body: r.body, reset: 'reset' in r, headers: r.body === undefined ? {} : { 'content-type': 'application/json' } })
  await res.body.dump()
  if (res.statusCode !== 200) throw new Error(`${r.name}: status ${res.statusCode}`)
  // HTTP/2 forbids connection-specific headers (RFC 9113, 8.2.2); Node's HTTP/1.1 server always sends one.
  // So an h2 route answered with one was counted over HTTP/1.1: stop rather than call its figure HTTP/2's.
  if ('http2' in r && res.headers.connection !== undefined) throw new Error(`${r.name}: answered over HTTP/1.1, not h2`)
}

async function load (pool: Pool, r: Route, n: number): Promise<void> {
  let left = n
  await Promise.all(Array.from({ length: 10 }, async () => { while (left-- > 0) await request(pool, r) }))
}

/** callgrind_control -d: the counts since the last dump go to a new part file; returns its path. */
function dump (pid: number, out: string): string {
  const before = new Set(readdirSync(dir))
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' })
  const part = readdirSync(dir).find(f => f.startsWith(`${out}.`) && !before.has(f))
  if (part === undefined) throw new Error(`callgrind wrote no dump for ${pid}`)
  return join(dir, part)
}

interface Window { file: string, total: number, events: Map<string, number> }
interface Result {
  variant: VariantName, route: string, instructionsPerRequest: number, min: number, max: number, windows: number[], median: Window, perfMap: string,
  /** With CACHE_SIM: the median window's simulated first-level and last-level data cache misses (reads + writes) per request. */
  d1MissesPerRequest?: number, llMissesPerRequest?: number
}
const misses = (w: Window, level: 'D1' | 'DL'): number => ((w.events.get(`${level}mr`) ?? 0) + (w.events.get(`${level}mw`) ?? 0)) / REQUESTS
const results: Result[] = []

for (const v of variants) for (const group of PROTOCOLS) {
  const http2 = group.some(r => 'http2' in r)
  const port = 3900 + variants.indexOf(v)
  const out = `${v}${http2 ? '-h2' : ''}.out`
  const child = spawn('valgrind', ['--tool=callgrind', '--instr-atstart=no', ...(CACHE_SIM ? ['--cache-sim=yes', `--LL=${CACHE_LL}`] : []), `--callgrind-out-file=${join(dir, out)}`,
    process.execPath, '--no-memory-reducer', '--perf-basic-prof', '--no-concurrent-recompilation', NO_STRIPPER, compiledServer(root)], {
    env: { PATH: process.env.PATH, BENCH_VARIANT: v, HTTP_PORT: String(port), HTTPS_PORT: String(port + 400), OTEL_BSP_SCHEDULE_DELAY: '200', BENCH_HTTP2: String(http2) },
    // Node 24's --perf-basic-prof also writes V8's isolate-*.log into the working directory: the run's own.
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe']
  })
  children.push(child)
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  // The HTTP/2 app's certificate is self-signed, made at its start.
  const pool = http2
    ? new Pool(`https://127.0.0.1:${port + 400}`, { connections: 10, allowH2: true, connect: { rejectUnauthorized: false } })
    : new Pool(`http://127.0.0.1:${port}`, { connections: 10 })
  for (let i = 0; ; i++) {
    await pause(500)
    try { await request(pool, group[0]!); break } catch (err) {
      if (i > 240 || child.exitCode !== null) throw new Error(`${v} did not start under valgrind\n${stderr.slice(-2000)}`, { cause: err })
    }
  }
  const pid = child.pid!
  for (const r of group) {
    process.stdout.write(`${v.padEnd(22)} ${r.name.padEnd(17)} warming (${WARMUP} requests uncounted) …`)
    await load(pool, r, WARMUP)
    execFileSync('callgrind_control', ['-i', 'on', String(pid)], { stdio: 'ignore' })
    // The first counted window after switching on reads several times the rest (V8 finishing its
    // optimizations); counted, but not kept.
    dump(pid, out)
    await load(pool, r, REQUESTS)
    dump(pid, out)
    const windows: Window[] = []
    for (let w = 0; w < WINDOWS; w++) {
      await load(pool, r, REQUESTS)
      const file = dump(pid, out)
      const events = callgrindEvents(readFileSync(file, 'utf8'))
      windows.push({ file, total: events.get('Ir')!, events })
    }
    execFileSync('callgrind_control', ['-i', 'off', String(pid)], { stdio: 'ignore' })
    const perReq = windows.map(w => w.total / REQUESTS)
    const sorted = [...windows].sort((a, b) => a.total - b.total)
    const mid = sorted[sorted.length >> 1]!
    results.push({
      variant: v, route: r.name, instructionsPerRequest: median(perReq), min: Math.min(...perReq), max: Math.max(...perReq),
      windows: perReq.map(Math.round), median: mid, perfMap: `/tmp/perf-${pid}.map`,
      ...(CACHE_SIM ? { d1MissesPerRequest: misses(mid, 'D1'), llMissesPerRequest: misses(mid, 'DL') } : {})
    })
    const cache = CACHE_SIM ? `, data cache misses D1 ${misses(mid, 'D1').toFixed(0)}, LL ${misses(mid, 'DL').toFixed(1)}` : ''
    process.stdout.write(`\r${v.padEnd(22)} ${r.name.padEnd(17)} ${Math.round(median(perReq)).toLocaleString('en').padStart(8)} instructions/request (windows ${perReq.map(x => Math.round(x / 100) / 10 + 'k').join(' ')})${cache}\n`)
  }
  await pool.close()
  child.kill('SIGTERM')
  await new Promise(resolve => child.once('exit', resolve))
}

// What each variant adds over bare, and where.
// One event at a time, so each line is `count (pct) name`, as functionCosts reads it.
const annotate = (file: string, event = 'Ir'): string => execFileSync('callgrind_annotate', ['--threshold=100', `--show=${event}`, `--sort=${event}`, file], { encoding: 'utf8', maxBuffer: 1 << 28 })
const signed = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(0)
console.log(`\ninstructions per request (median window), added over bare, and bare / variant${CACHE_SIM ? '; simulated data cache misses per request (added)' : ''}:`)
for (const r of ROUTES) {
  const bare = results.find(x => x.variant === 'bare' && x.route === r.name)!
  for (const res of results.filter(x => x.route === r.name)) {
    const added = res.instructionsPerRequest - bare.instructionsPerRequest
    console.log(`  ${res.variant.padEnd(22)} ${r.name.padEnd(17)} ${Math.round(res.instructionsPerRequest).toLocaleString('en').padStart(8)}` +
      `  ${res.variant === 'bare' ? ''.padStart(8) : ((added >= 0 ? '+' : '') + Math.round(added).toLocaleString('en')).padStart(8)}` +
      `  ${(bare.instructionsPerRequest / res.instructionsPerRequest).toFixed(3)}` +
      (CACHE_SIM ? `   D1 misses ${res.d1MissesPerRequest!.toFixed(0).padStart(5)} (${signed(res.d1MissesPerRequest! - bare.d1MissesPerRequest!)}), LL ${res.llMissesPerRequest!.toFixed(1)} (${signed(res.llMissesPerRequest! - bare.llMissesPerRequest!)})` : ''))
  }
}
if (TOP > 0) {
  for (const res of results.filter(x => x.variant !== 'bare')) {
    const bare = results.find(x => x.variant === 'bare' && x.route === res.route)!
    if (!existsSync(res.perfMap) || !existsSync(bare.perfMap)) continue
    const mapA = parsePerfMap(readFileSync(bare.perfMap, 'utf8'))
    const mapB = parsePerfMap(readFileSync(res.perfMap, 'utf8'))
    for (const [event, what] of [['Ir', 'instructions'], ...(CACHE_SIM ? [['D1mr', 'D1 read misses'], ['D1mw', 'D1 write misses']] : [])] as const) {
      const a = functionCosts(annotate(bare.median.file, event), mapA)
      const b = functionCosts(annotate(res.median.file, event), mapB)
      console.log(`\n${res.variant}, ${res.route}: where it differs from bare (${what} per request, median windows; * TurboFan, + Maglev, ^ Sparkplug, ~ interpreted)`)
      for (const d of costDiff(a, b, REQUESTS, REQUESTS, TOP)) {
        const digits = event === 'Ir' ? 0 : 1
        console.log(`  ${((d.added >= 0 ? '+' : '') + d.added.toFixed(digits)).padStart(7)}  ${d.a.toFixed(digits).padStart(6)} → ${d.b.toFixed(digits).padStart(6)}  ${d.name.slice(0, 110)}`)
      }
    }
  }
}

// A quick look goes to a -partial file, as npm run bench's does to partial.json: one had replaced the table's
// source with three of its twelve rows. bench/README.md's instruction table reads instructions.json, which
// only a run with the default variants and routes (or more) and no fewer requests writes; its cache table
// reads cache-sim.json, which only a cache-simulated run at least like the one it quotes writes (another
// such look had overwritten it with POST rows).
const FULL_CACHE_SIM = { ...FULL, windows: 3, warmup: 10000, routes: 'get' }
const full = CACHE_SIM ? FULL_CACHE_SIM : FULL
const partial = !variantsFrom(full.variants, full.variants).every(v => variants.includes(v)) ||
  !full.routes.split(',').every(k => ROUTES.some(r => r.key === k)) ||
  REQUESTS < full.requests || WINDOWS < full.windows || WARMUP < full.warmup
const file = join(root, 'bench', 'results', `${CACHE_SIM ? 'cache-sim' : 'instructions'}${partial ? '-partial' : ''}.json`)
writeFileSync(file, JSON.stringify({
  date: new Date().toISOString().slice(0, 10),
  node: process.version,
  method: `valgrind --tool=callgrind${CACHE_SIM ? ` --cache-sim=yes --LL=${CACHE_LL}` : ''}; bench/server.ts (compiled) warmed with ${WARMUP} requests uncounted, one counted window discarded, then ${WINDOWS} windows of ${REQUESTS} requests (10 keep-alive connections, undici${ROUTES.some(r => 'reset' in r) ? '; GET /, new conn.: Connection: close on every request' : ''}); median window`,
  rows: results.map(({ variant, route, instructionsPerRequest, min, max, windows, d1MissesPerRequest, llMissesPerRequest }) => ({
    variant, route, instructionsPerRequest: Math.round(instructionsPerRequest), min: Math.round(min), max: Math.round(max), windows,
    ...(CACHE_SIM ? { d1MissesPerRequest: Math.round(d1MissesPerRequest!), llMissesPerRequest: Math.round(llMissesPerRequest! * 10) / 10 } : {})
  }))
}, null, 2) + '\n')
console.log(`\nwrote ${file}\ncallgrind's files (callgrind_annotate, kcachegrind): ${dir}; JIT names: ${results.map(r => r.perfMap).filter((m, i, all) => all.indexOf(m) === i).join(' ')}`)
process.exit(0)
