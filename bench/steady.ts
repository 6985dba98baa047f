// npm run bench:steady: a variant's ratio to bare over the first minute of its process's life, so that the
// figures npm run bench takes from young processes can be read against a server that has been up a while.
//
// Why: npm run bench starts every server afresh each round (three generations of eighteen servers within ten
// minutes), so its windows meet processes 5–15 s into their load. Some costs are still falling then: V8 is
// still compiling, and a path a variant takes rarely (the traced request at 1 %) gets hot last. Here one
// pair at a time — the variant and a bare twin, started together and loaded together, exactly as npm run
// bench's paired windows (paired.ts) — is measured in back-to-back windows for AGE seconds, with nothing else
// running; the table gives the median ratio by age band (by-age.ts). It writes bench/results/steady.json.
//
//   npm run bench:steady                                                  # journey-metrics and journey-1pct on GET /, 2 pairs each, 60 s (≈ 5 min)
//   VARIANTS=journey-1pct,usual-10pct ROUTES=get,post PAIRS=3 AGE=90 npm run bench:steady
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as pause } from 'node:timers/promises'
import { AGE_BANDS, byAge, renderByAge, type AgeWindow } from './by-age.ts'
import { paired } from './paired.ts'
import { benchRoutes, childrenKilledAtExit, machine, NODE_FLAGS, requireTools, root, startReceiver, startServer, stopServers } from './servers.ts'
import { variantsFrom } from './variants.ts'
import { holdIdle } from './idle.ts'

requireTools()
const only = variantsFrom(process.env.VARIANTS, 'journey-metrics,journey-1pct')
const PAIRS = Number(process.env.PAIRS ?? 2)
const AGE = Number(process.env.AGE ?? 60)
const WINDOW = 2
// The same flags as npm run bench's servers (NODE_FLAGS, servers.ts: here nothing idles, so the memory
// reducer changes nothing, and keeping them equal keeps the two benches comparable).

const dir = mkdtempSync(join(tmpdir(), 'journey-steady-'))
const routes = benchRoutes(dir).filter(r => (process.env.ROUTES ?? 'get').split(',').includes(r.key) && r.http2 !== true)
if (routes.length === 0) throw new Error('ROUTES: one or more of get, post, https')

const children = childrenKilledAtExit()
startReceiver(children) // the sampled variants export to it
const idle = holdIdle()
console.log(idle.description)

const windows: AgeWindow[] = []
const started = Date.now()
let n = 0
// Variants interleaved pair by pair (A B A B), so drift over the run meets every variant alike.
for (let pair = 1; pair <= PAIRS; pair++) {
  for (const r of routes) {
    for (const v of only) {
      const out = (name: string): string => join(dir, `server-${n++}-${name}.out`)
      const twinOut = out('bare')
      const procOut = out(v)
      const [twin, proc] = await Promise.all([
        startServer('bare', 0, { flags: NODE_FLAGS, stdout: twinOut, children }),
        startServer(v, 1, { flags: NODE_FLAGS, stdout: procOut, children })
      ])
      const ratios: string[] = []
      let steal = 0
      for (let ageS = WINDOW; ageS <= AGE; ageS += WINDOW) {
        const p = await paired(twin, r.url(0), proc, r.url(1), r.load, WINDOW)
        windows.push({ variant: v, route: r.name, pair, ageS, ratio: p.ratio, cpuShare: p.cpuShare, minShare: p.minShare, errors: p.errors, hostSteal: p.hostSteal })
        ratios.push(p.ratio.toFixed(2))
        steal = Math.max(steal, p.hostSteal)
      }
      // A process V8 left slow for life (tick-state.ts) reads low in every window: said, not left out.
      const states = await stopServers([twin, proc], c => c === twin ? twinOut : procOut)
      const slow = [states.get(proc) === 'slow' ? 'the variant' : '', states.get(twin) === 'slow' ? 'the twin' : ''].filter(Boolean)
      console.log(`pair ${pair}/${PAIRS}  ${v.padEnd(22)} ${r.name.padEnd(17)} ratio every ${WINDOW} s: ${ratios.join(' ')}` +
        (slow.length > 0 ? `  (V8 left ${slow.join(' and ')} with a slow nextTick)` : '') +
        `  host steal ≤ ${(steal * 100).toFixed(1)}%  ${((Date.now() - started) / 1000).toFixed(0)} s`)
      for (const w of windows) if (w.pair === pair && w.variant === v && w.route === r.name) w.slow = slow.length > 0
      await pause(300)
    }
  }
}

const rows = byAge(windows, AGE_BANDS)
console.log(`\nRatio to a bare twin by seconds of load (median, range, windows kept; ${PAIRS} fresh pair${PAIRS === 1 ? '' : 's'} per variant and route, both servers on CPU 0, wrk on CPU 1):\n`)
console.log(renderByAge(rows))
const meta = { date: new Date().toISOString().slice(0, 10), machine: machine(), idle: idle.mode, ageS: AGE, windowS: WINDOW, pairs: PAIRS }
writeFileSync(join(root, 'bench', 'results', 'steady.json'), JSON.stringify({ meta, rows, windows }, null, 2) + '\n')
console.log('\nwrote bench/results/steady.json')
// The receiver's IPC channel would keep this process alive.
for (const c of children) c.kill('SIGKILL')
