// What being slower costs a server in the kernel, on this machine's loopback: the same minimal Fastify
// server with a busy loop of N µs in its handler (pure user-space work: no syscall, no allocation), loaded
// alone on CPU 0 by wrk on CPU 1. It prints the server's user and kernel CPU per request and how often
// wrk's thread went to sleep per response.
//
// Why it exists: in npm run bench the slow variants (100 % sampled, the usual setup) add several µs of
// kernel CPU per request though they make no more syscalls per request than bare. This shows the same with
// no instrumentation at all. On loopback the writer's send runs the receiver's TCP path and wakes the
// receiving thread; a fast server finds wrk still busy with earlier responses, a slow one finds it asleep
// after nearly every response and pays for the wake-up in its own kernel time (bench/NOTES.md, nineteenth
// session). A remote client's wake-ups would be its own machine's cost. Each measurement is made twice:
// with the CPUs left to halt when idle, and held in polling idle (idle.ts), where waking wrk costs no
// interrupt: the difference between the two is what the benches' default (polling) takes out.
//
//   npm run bench:pace                         # busy loops of 0, 3, 8, 12, 20, 35 µs; both idle modes; 2 rounds (≈ 3.5 min)
//   SPIN_US=0,12 ROUNDS=3 IDLE=halt npm run bench:pace
//   WARM_S=1 WINDOW_S=2 …                      # shorter warm-up and measured load (4 and 4 s)
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { CLK_TCK, cpuTimes, requireTools, stopChild } from './servers.ts'
import { holdIdle, idleMode, type IdleMode } from './idle.ts'
import { median } from './stats.ts'
import { wrk } from './wrk.ts'

const WARM_S = Number(process.env.WARM_S ?? 4)
const WINDOW_S = Number(process.env.WINDOW_S ?? 4)

const url = (port: number): string => `http://127.0.0.1:${port}/`

interface Row { idle: IdleMode, spinUs: number, rps: number, userUs: number, kernelUs: number, sleepsPerResponse: number }

async function measure (spinUs: number, mode: IdleMode): Promise<Row> {
  const idle = holdIdle(mode)
  const server = spawn('taskset', ['-c', '0', process.execPath, '--no-memory-reducer', fileURLToPath(import.meta.url)], {
    env: { PATH: process.env.PATH, PACE_SPIN_US: String(spinUs) }, stdio: ['ignore', 'pipe', 'inherit']
  })
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.stdout!.once('data', (line: Buffer) => resolve(Number(line.toString())))
      server.once('exit', code => reject(new Error(`the busy-loop server exited (${code}) before listening`)))
    })
    await wrk(url(port), WARM_S, undefined) // warm-up: V8 optimizes, the heap grows
    const s0 = cpuTimes(server.pid!)
    const load = await wrk(url(port), WINDOW_S, undefined)
    const s1 = cpuTimes(server.pid!)
    if (load.errors > 0) throw new Error(`wrk saw ${load.errors} errors against the busy-loop server (${spinUs} µs)`)
    return {
      idle: idle.mode,
      spinUs,
      rps: load.rps,
      userUs: (s1.user - s0.user) / CLK_TCK * 1e6 / load.requests,
      kernelUs: (s1.kernel - s0.kernel) / CLK_TCK * 1e6 / load.requests,
      sleepsPerResponse: load.sleepsPerResponse
    }
  } finally {
    idle.release()
    await stopChild(server)
  }
}

async function drive (): Promise<void> {
  const spins = (process.env.SPIN_US ?? '0,3,8,12,20,35').split(',').map(Number)
  const rounds = Number(process.env.ROUNDS ?? 2)
  const modes = (process.env.IDLE ?? 'halt,poll').split(',').map(m => idleMode(m, 'IDLE'))
  const rows: Row[] = []
  for (let r = 0; r < rounds; r++) {
    for (const spinUs of spins) {
      // Both modes side by side, so a drift of the machine's speed hits them alike.
      for (const mode of modes) {
        const row = await measure(spinUs, mode)
        rows.push(row)
        console.log(`round ${r + 1}, ${row.idle} idle, spin ${spinUs} µs: ${Math.round(row.rps)} req/s, user ${row.userUs.toFixed(1)} µs, kernel ${row.kernelUs.toFixed(1)} µs, wrk slept ${row.sleepsPerResponse.toFixed(2)} per response`)
      }
    }
  }
  console.log('\n| idle | busy loop per request | req/s | user µs/request | kernel µs/request | wrk sleeps per response |\n|---|---:|---:|---:|---:|---:|')
  // A mode asked for but not granted (no root) is measured as halt: its rows are halt's, said as such.
  for (const mode of [...new Set(rows.map(r => r.idle))]) for (const spinUs of spins) {
    const of = rows.filter(r => r.spinUs === spinUs && r.idle === mode)
    const m = (f: (r: Row) => number): number => median(of.map(f))
    console.log(`| ${mode} | ${spinUs} µs | ${Math.round(m(r => r.rps))} | ${m(r => r.userUs).toFixed(1)} | ${m(r => r.kernelUs).toFixed(1)} | ${m(r => r.sleepsPerResponse).toFixed(2)} |`)
  }
  console.log(`\nMedians of ${rounds} round(s); each a fresh server alone on CPU 0 (${WARM_S} s of load first), wrk -t1 -c50 on CPU 1; CPU from /proc/PID/stat over ${WINDOW_S} s of wrk, its sleeps from the middle of that run (wrk.ts).`)
}

// Last, so that everything above is defined before the driver runs.
if (process.env.PACE_SPIN_US !== undefined) {
  // The server side of one measurement (this file started again by the driver below).
  const { keepTickShape } = await import('../src/tick-shape.ts')
  keepTickShape()
  const { default: Fastify } = await import('fastify')
  const spinMs = Number(process.env.PACE_SPIN_US) / 1000
  const app = Fastify()
  app.get('/', async () => {
    const end = performance.now() + spinMs
    while (spinMs > 0 && performance.now() < end);
    return { hello: 'world' }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // The driver reads the port from here: a fixed one could be another process's.
  console.log(String((app.server.address() as { port: number }).port))
} else {
  requireTools(['wrk', 'taskset'])
  await drive()
}
