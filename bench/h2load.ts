// h2load (Debian's nghttp2-client), the HTTP/2 load generator of the bench's HTTP/2 routes: wrk speaks only
// HTTP/1.1. Run like wrk.ts runs wrk — pinned to CPU 1, for a time — and read into the same result.
import { execFile } from 'node:child_process'
import type { WrkResult } from './wrk.ts'

/**
 * h2load's summary as a WrkResult. Its `done` requests are those answered within the window, as wrk's
 * count is. It prints no latency percentiles (only min, max, mean), so p50 and p99 are NaN; nor is its
 * pace read (sleepsPerResponse NaN). A connection that did not negotiate h2 is an error: the numbers would
 * be some other protocol's.
 */
export function parseH2load (out: string): WrkResult {
  const n = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN)
  if (!/Application protocol: h2\b/.test(out)) throw new Error(`h2load did not speak HTTP/2 with the server:\n${out}`)
  // h2load's `failed` already holds its 4xx and 5xx answers and its `errored` requests (a timeout is one of
  // those): adding them again would count one bad answer two or three times.
  const failed = n(/(\d+) failed/)
  const non2xx = n(/(\d+) 4xx/) + n(/(\d+) 5xx/)
  return {
    requests: n(/(\d+) done/),
    rps: n(/finished in [\d.]+s, ([\d.]+) req\/s/),
    p50: NaN,
    p99: NaN,
    errors: failed,
    non2xx,
    sleepsPerResponse: NaN
  }
}

/**
 * h2load on CPU 1 for `seconds`: `connections` connections of `streams` concurrent streams each (HTTP/2's
 * multiplexing: a browser or a gRPC client keeps several in flight on one connection), `args` added (a
 * POST body: `-d file -H …`).
 */
export function h2load (url: string, seconds: number, args: readonly string[], connections: number, streams = 10): Promise<WrkResult> {
  const argv = ['-c', '1', 'h2load', '-t', '1', '-c', String(connections), '-m', String(streams), '-D', String(seconds), ...args, url]
  return new Promise((resolve, reject) => {
    execFile('taskset', argv, { encoding: 'utf8' }, (err, out) => {
      if (err !== null) return reject(err)
      try { resolve(parseH2load(out)) } catch (e) { reject(e as Error) }
    })
  })
}
