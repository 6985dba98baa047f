// npm run bench:ab: does a change make a variant cheaper? Two servers of the same variant — A and B, from two
// checkouts, or one checkout with different Node flags or environment (or two variants: A_VARIANT) — loaded at the same time on CPU 0,
// exactly as npm run bench loads a variant and its bare twin (paired.ts), and the ratio of their CPU per
// request, window by window. Not a test: it prints figures.
//
// Why: a change worth a few per cent cannot be seen by running npm run bench before and after — cells move
// by up to 0.1 between runs, and a process can be 10–20 % slower than its twin for its whole life (mostly
// in the kernel's share; bench/README.md). Two processes sharing the same seconds see the same machine;
// fresh pairs (PAIRS) show how much of a difference belongs to the processes rather than the change. Every
// comparison in bench/NOTES.md called "paired" was measured this way.
//
//   A=/path/to/checkout-before VARIANT=journey-100pct npm run bench:ab      # B is this checkout
//   B_FLAGS='--no-allocation-site-pretenuring' VARIANT=journey-100pct npm run bench:ab
//   B_ENV='{"JOURNEY_PRECISION":"fine"}' ROUTE=post PAIRS=3 npm run bench:ab
//   A_ENV='{"JOURNEY_KEEP_PER_SECOND":"1000000"}' VARIANT=journey-1pct ROUTE=fail npm run bench:ab   # a storm of 500s: the error rule's limit against none
//   A_VARIANT=bare VARIANT=journey-metrics ROUTE=h2 npm run bench:ab   # what the journey costs on HTTP/2 (h2load)
//
// A, B: checkouts (default: this one; each needs its node_modules and, like the other, its TCP_INFO addon:
// npm run install builds it; each is compiled with its own TypeScript into a folder of its own, compile.ts).
// A_FLAGS, B_FLAGS: Node flags added to npm run bench's (BENCH_NODE_FLAGS, default --no-memory-reducer). A_ENV, B_ENV: JSON objects of variables (the bench's own — the variant, the
// ports, OTEL_BSP_SCHEDULE_DELAY — cannot be overridden).
// VARIANT (journey-metrics; A_VARIANT, B_VARIANT for one side: A_VARIANT=bare measures a variant against no
// telemetry), ROUTE (get, post, https, get-close, https-close, fail: every answer a 500, or h2, h2-post: HTTP/2
// over TLS, loaded by h2load from Debian's nghttp2-client), PAIRS (2), WINDOWS per pair (6, of 3 s each),
// WARM (seconds of load before the first window, 6). Windows where the servers did not get 90 % of the core
// are dropped, as in npm run bench (KEEP_BUSY_WINDOWS=1 keeps them: for tests of this script, whose figures
// mean nothing on a shared core). B/A below 1 means B is cheaper.
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as pause } from 'node:timers/promises'
import { failingPairedKept, paired, pairedKept } from './paired.ts'
import { benchRoutes, childrenKilledAtExit, machine, NODE_FLAGS, requireTools, root, startReceiver, startServer, stopServers } from './servers.ts'
import { HTTP2_VARIANTS, variantsFrom, type VariantName } from './variants.ts'
import { median } from './stats.ts'
import { holdIdle } from './idle.ts'

interface Side { name: 'A' | 'B', variant: VariantName, checkout: string, flags: string[], env: Record<string, string>, addon: boolean }
function side (name: 'A' | 'B'): Side {
  const checkout = resolve(process.env[name] ?? root)
  if (!existsSync(join(checkout, 'bench', 'server.ts'))) throw new Error(`${name}=${checkout}: no bench/server.ts there`)
  const env = JSON.parse(process.env[`${name}_ENV`] ?? '{}') as Record<string, string>
  const addon = existsSync(join(checkout, 'native', 'build', 'Release', 'tcp_info.node'))
  const [variant] = variantsFrom(process.env[`${name}_VARIANT`] ?? process.env.VARIANT, 'journey-metrics')
  return { name, variant: variant!, checkout, flags: [...NODE_FLAGS, ...(process.env[`${name}_FLAGS`] ?? '').split(' ').filter(Boolean)], env, addon }
}
const a = side('A')
const b = side('B')
// Without the TCP_INFO addon a server skips a syscall per sampled request and per connection, so it would
// look cheaper for a reason that is not the change. A git worktree sharing node_modules has no addon until
// `npm run install` builds it there.
if (a.addon !== b.addon) {
  const without = a.addon ? b : a
  throw new Error(`${without.name}=${without.checkout} has no TCP_INFO addon (native/build) and the other side has: they would not do the same work; run npm run install there`)
}
const PAIRS = Number(process.env.PAIRS ?? 2)
const WINDOWS = Number(process.env.WINDOWS ?? 6)
const WINDOW_S = Number(process.env.WINDOW_S ?? 3)
const WARM = Number(process.env.WARM ?? 6)
const KEEP_BUSY = process.env.KEEP_BUSY_WINDOWS === '1'
const dir = mkdtempSync(join(tmpdir(), 'journey-ab-'))
const route = benchRoutes(dir).find(r => r.key === (process.env.ROUTE ?? 'get'))
if (route === undefined) throw new Error(`ROUTE: one of ${benchRoutes(dir).map(r => r.key).join(', ')}`)
const http2 = route.http2 === true
for (const s of [a, b]) {
  if (http2 && !HTTP2_VARIANTS.includes(s.variant)) throw new Error(`${s.name}: ${s.variant} is not measured on HTTP/2 (bench/variants.ts says why); one of ${HTTP2_VARIANTS.join(', ')}`)
}
requireTools(http2 ? ['h2load', 'taskset'] : undefined)

const children = childrenKilledAtExit()
startReceiver(children) // the sampled variants export to it

const describe = (s: Side): string => `${s.variant} ${s.checkout}${s.flags.length > 0 ? ` ${s.flags.join(' ')}` : ''}${Object.keys(s.env).length > 0 ? ` ${JSON.stringify(s.env)}` : ''}`
const idle = holdIdle()
console.log(`${a.variant === b.variant ? `${a.variant}, ` : ''}${route.name}, ${machine()}; ${idle.description}\n  A: ${describe(a)}\n  B: ${describe(b)}\n`)
const fmt = (n: number, d = 1): string => n.toFixed(d)
// A route that fails on purpose (every answer a 500) keeps a window when every answer was one.
const failing = route.failing === true
const all: number[] = []
const userDiffs: number[] = []
let dropped = 0
for (let pair = 1; pair <= PAIRS; pair++) {
  // A in slot 0 and B in slot 1, then swapped, so that neither side always has the same ports.
  const [first, second] = pair % 2 === 1 ? [a, b] : [b, a]
  const out = (s: Side): string => join(dir, `pair-${pair}-${s.name}.out`)
  const procs = await Promise.all([first, second].map((s, slot) => startServer(s.variant, slot, { flags: s.flags, checkout: s.checkout, env: s.env, stdout: out(s), children, http2 })))
  const procOf = (s: Side): ChildProcess => procs[s === first ? 0 : 1]!
  const urlOf = (s: Side): string => route.url(s === first ? 0 : 1)
  // What each side's server was really started with (its arguments after node), not what was asked for.
  for (const s of [a, b]) console.log(`pair ${pair} ${s.name} pid ${procOf(s).pid}: ${procOf(s).spawnargs.slice(1).join(' ')}`)
  if (WARM > 0) await paired(procOf(a), urlOf(a), procOf(b), urlOf(b), route.load, WARM)
  const ratios: number[] = []
  for (let w = 0; w < WINDOWS; w++) {
    // paired() gives B's requests per CPU-second over A's: B's CPU per request over A's is its inverse.
    const p = await paired(procOf(a), urlOf(a), procOf(b), urlOf(b), route.load, WINDOW_S)
    if (KEEP_BUSY ? p.errors > (failing ? p.non2xx : 0) : !(failing ? failingPairedKept(p) : pairedKept(p))) {
      dropped++
      // Said, so a dropped window can be read against what took the core: the host's steal among others.
      console.log(`pair ${pair} window ${w + 1}  dropped: the servers had ${fmt(p.cpuShare * 100, 0)} % of CPU 0${p.errors > 0 ? `, ${p.errors} errors` : ''}  host steal ${fmt(p.hostSteal * 100, 1)} %`)
      continue
    }
    const cpu = 1 / p.ratio
    ratios.push(cpu)
    userDiffs.push(p.userUs - p.twinUserUs)
    console.log(`pair ${pair} window ${w + 1}  A ${fmt(p.twinUserUs)} + ${fmt(p.twinKernelUs)} µs  B ${fmt(p.userUs)} + ${fmt(p.kernelUs)} µs  (user + kernel per request)${http2 ? '' : `  wrk sleeps/response A ${fmt(p.twinSleepsPerResponse, 2)} B ${fmt(p.sleepsPerResponse, 2)}`}  host steal ${fmt(p.hostSteal * 100, 1)} %  B/A ${fmt(cpu, 3)}`)
  }
  const states = await stopServers(procs, c => out(c === procs[0] ? first : second))
  const slow = [a, b].filter(s => states.get(procOf(s)) === 'slow').map(s => s.name)
  console.log(`pair ${pair}: median B/A ${ratios.length > 0 ? fmt(median(ratios), 3) : '–'}` +
    (slow.length > 0 ? `  (V8 left ${slow.join(' and ')} with a slow nextTick: tick-state.ts)` : '') + '\n')
  all.push(...ratios)
  await pause(300)
}
if (all.length === 0) {
  console.log(`no window kept (${dropped} dropped: the servers had < 90 % of CPU 0, or errors)`)
  process.exitCode = 1
} else {
  console.log(`B/A CPU per request: median ${fmt(median(all), 3)}, range ${fmt(Math.min(...all), 3)}–${fmt(Math.max(...all), 3)}, ${all.length} windows in ${PAIRS} pair${PAIRS === 1 ? '' : 's'}` +
    `${dropped > 0 ? ` (${dropped} dropped)` : ''}; B − A user space: median ${fmt(median(userDiffs), 2)} µs per request`)
}
for (const c of children) c.kill('SIGKILL')
