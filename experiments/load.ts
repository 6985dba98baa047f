// A bounded mixed workload against a running server, for the compose stack's `load` profile or by hand:
//
//   node experiments/load.ts --http http://127.0.0.1:3000 --https https://127.0.0.1:3443 --seconds 60 --concurrency 4
//
// Stops by itself after --seconds or --requests; prints a progress line every 10 s.
import { parseArgs } from 'node:util'
import { runWorkload } from './lib/workload.ts'

const { values } = parseArgs({
  options: {
    http: { type: 'string', default: process.env.LOAD_HTTP_URL ?? 'http://127.0.0.1:3000' },
    https: { type: 'string', default: process.env.LOAD_HTTPS_URL ?? 'https://127.0.0.1:3443' },
    seconds: { type: 'string', default: process.env.LOAD_SECONDS ?? '600' },
    requests: { type: 'string', default: process.env.LOAD_REQUESTS ?? '1000000' },
    concurrency: { type: 'string', default: process.env.LOAD_CONCURRENCY ?? '4' },
    pause: { type: 'string', default: process.env.LOAD_PAUSE_MS ?? '20' }
  }
})
const num = (name: keyof typeof values, min: number, max: number): number => {
  const v = Number(values[name])
  if (!Number.isFinite(v) || v < min || v > max) { console.error(`--${name} must be a number from ${min} to ${max}`); process.exit(2) }
  return v
}
const seconds = num('seconds', 1, 86_400)
const abort = new AbortController()
process.on('SIGINT', () => abort.abort())
process.on('SIGTERM', () => abort.abort())

let errors = 0
const started = Date.now()
console.log(`load: ${values.http} and ${values.https} for up to ${seconds} s`)
const progress = setInterval(() => console.log(`load: ${Math.round((Date.now() - started) / 1000)} s, ${errors} errors so far`), 10_000)
const result = await runWorkload({
  httpUrl: values.http!,
  httpsUrl: values.https!,
  seconds,
  maxRequests: num('requests', 1, 1e9),
  concurrency: num('concurrency', 1, 256),
  pauseMs: num('pause', 0, 60_000),
  signal: abort.signal,
  onError: (what, err) => { if (errors++ < 20) console.error(`load: ${what}: ${err.message}`) }
})
clearInterval(progress)
console.log(`load: sent ${result.sent} requests, ${result.failed} failed, in ${Math.round((Date.now() - started) / 1000)} s`)
