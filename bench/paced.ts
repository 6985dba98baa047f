// wrk run at a chosen pace rather than flat out, for bench:latency: every connection waits a random time
// before each request, so requests reach the server at about `rate` a second, at random moments as
// independent clients' do, and the percentiles of wrk's own latency histogram are read back.
//
// Why not flat out: wrk sends a connection's next request the moment its response arrives, so the server is
// always saturated and its latency is queueing behind the other connections. Why random waits: clients paced
// by one timer each (h2load --rps) all start together and send in bursts — 50 requests at once every
// 12.5 ms at 4,000/s —, which measures a request's place in the burst. With a wait before each request a
// connection sends on time even while the server is stalled (it has no request outstanding), so a stall
// reaches the latencies of the requests that arrive during it, as it would reach real clients'.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'

export interface PacedResult {
  requests: number
  /** Requests a second wrk achieved: a little under the pace asked for, by the latencies added to the waits. */
  rps: number
  /** Responses that were not 2xx/3xx, plus socket errors. */
  errors: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  p999Ms: number
  maxMs: number
}

/**
 * The Lua wrk runs: `base` (a route's script: a POST's method, body and headers) plus an exponentially
 * distributed wait of mean `meanMs` before every request (wrk's `delay()`, in whole ms: its event loop's
 * timers have no finer step, so each wait is rounded to the nearest ms and the mean stays), and a `done()`
 * that prints the latency percentiles as one JSON line.
 */
export function pacedScript (base: string, meanMs: number): string {
  return `${base}
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
function delay()
  return math.floor(-${meanMs} * math.log(1 - math.random()) + 0.5)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('PACED {"requests":%d,"durationUs":%d,"errors":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`
}

/** The JSON line pacedScript's `done()` printed, in ms. */
export function parsePaced (out: string): PacedResult {
  const line = /^PACED (\{.*\})$/m.exec(out)?.[1]
  if (line === undefined) throw new Error(`wrk printed no PACED line:\n${out}`)
  const j = JSON.parse(line) as Record<string, number>
  const ms = (us: number): number => us / 1000
  return {
    requests: j.requests!,
    rps: j.requests! / (j.durationUs! / 1e6),
    errors: j.errors!,
    p50Ms: ms(j.p50!),
    p90Ms: ms(j.p90!),
    p99Ms: ms(j.p99!),
    p999Ms: ms(j.p999!),
    maxMs: ms(j.max!)
  }
}

export interface PacedLoad {
  url: string
  /** Requests a second over all connections. */
  rate: number
  connections: number
  seconds: number
  /** The route's own wrk script (a POST body), or none. */
  base: string
  /** Where to write the script wrk runs. */
  script: string
}

/** wrk -t1 on CPU 1, keep-alive, each of `connections` connections waiting connections / rate s on average before each request. */
export function paced (load: PacedLoad): Promise<PacedResult> {
  writeFileSync(load.script, pacedScript(load.base, 1000 * load.connections / load.rate))
  const args = ['-c', '1', 'wrk', '-t1', `-c${load.connections}`, `-d${load.seconds}s`, '-s', load.script, load.url]
  return new Promise((resolve, reject) => {
    execFile('taskset', args, { encoding: 'utf8', timeout: (load.seconds + 30) * 1000 }, (err, out) => {
      if (err !== null) { reject(err); return }
      try { resolve(parsePaced(out)) } catch (e) { reject(e as Error) }
    })
  })
}
