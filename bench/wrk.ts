// wrk, Debian's HTTP load generator, run from the bench: pinned to CPU 1, its output parsed into numbers.
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

export interface WrkResult {
  /** Every response wrk counted, whatever its status. */
  requests: number
  rps: number
  p50: number
  p99: number
  /**
   * Responses that were not 2xx/3xx, plus socket errors (connect, read, write, timeout). A window with any
   * is not a measurement of serving: a server answering 500s fast would look cheap.
   */
  errors: number
  /** Of `errors`, the non-2xx responses: a route that fails on purpose (servers.ts, `failing`) answers only those. */
  non2xx: number
  /**
   * How often wrk's thread went to sleep per response, in the middle of the run (NaN when not measured).
   * On loopback a server's write wakes wrk when it sleeps, and pays for that in its own kernel time: a
   * server slow enough to find wrk asleep after every response pays ≈ 4–5 µs more per request here
   * (bench/pace.ts), so this says how much of a kernel share is pace rather than code.
   */
  sleepsPerResponse: number
}

function parseWrk (out: string): WrkResult {
  const unit = (v: string, u: string): number => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : 1)
  const lat = (p: string): number => { const m = new RegExp(`${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out); return m === null ? NaN : unit(m[1]!, m[2]!) }
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((n, x) => n + Number(x), 0)
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: lat('50'),
    p99: lat('99'),
    errors: non2xx + socketErrors,
    non2xx,
    sleepsPerResponse: NaN
  }
}

/** Voluntary context switches of all of a process's threads (wrk's main thread only waits for its worker); NaN once it has gone. */
function voluntarySwitches (pid: number): number {
  try {
    let n = 0
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8'))?.[1])
    }
    return n
  } catch {
    return NaN
  }
}

/** wrk -t1 on CPU 1, keep-alive, `connections` connections for `seconds`; `script` is a Lua file (a POST body, say). */
export function wrk (url: string, seconds: number, script: string | undefined, connections = 50): Promise<WrkResult> {
  const args = ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...(script === undefined ? [] : ['-s', script]), url]
  // wrk's sleeps are counted from 0.3 s in to 0.3 s before its end, clear of connecting and stopping, and
  // divided by the responses of that span at wrk's mean rate (the load is steady by then).
  const margin = 0.3
  let first: { at: number, n: number } | undefined
  let last: { at: number, n: number } | undefined
  return new Promise((resolve, reject) => {
    // taskset execs wrk: the child's pid is wrk's.
    const child = execFile('taskset', args, { encoding: 'utf8' }, (err, out) => {
      clearTimeout(t1)
      clearTimeout(t2)
      if (err !== null) return reject(err)
      const result = parseWrk(out)
      if (first !== undefined && last !== undefined && last.at > first.at) {
        result.sleepsPerResponse = (last.n - first.n) / (result.rps * (last.at - first.at) / 1000)
      }
      resolve(result)
    })
    const read = (): { at: number, n: number } => ({ at: performance.now(), n: voluntarySwitches(child.pid!) })
    const t1 = setTimeout(() => { first = read() }, margin * 1000)
    const t2 = setTimeout(() => { last = read() }, (seconds - margin) * 1000)
  })
}
