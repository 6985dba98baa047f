// wrk, Debian's HTTP load generator, run from the bench: pinned to CPU 1, its output parsed into numbers.
import { execFile } from 'node:child_process'

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
}

export function parseWrk (out: string): WrkResult {
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
    errors: non2xx + socketErrors
  }
}

/** wrk -t1 on CPU 1, keep-alive, `connections` connections for `seconds`; `script` is a Lua file (a POST body, say). */
export function wrk (url: string, seconds: number, script: string | undefined, connections = 50): Promise<WrkResult> {
  const args = ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...(script === undefined ? [] : ['-s', script]), url]
  return new Promise((resolve, reject) => {
    execFile('taskset', args, { encoding: 'utf8' }, (err, out) => err === null ? resolve(parseWrk(out)) : reject(err))
  })
}
