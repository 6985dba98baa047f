// The bench's HTTP/2 routes: h2load's summary read as wrk's is (bench/h2load.ts), and bench:ab pairing a bare
// server with a journey variant on HTTP/2 (A_VARIANT). Figures are the bench's to print; here, that the
// servers really spoke HTTP/2, that every answer counted, and that a variant not measured on HTTP/2 is
// refused before any server starts.
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { parseH2load } from '../bench/h2load.ts'
import { loadTlsMaterial } from '../src/tls-cert.ts'

const script = fileURLToPath(new URL('../bench/ab.ts', import.meta.url))
function run (env: Record<string, string>): Promise<{ code: number, out: string, err: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [script], { env: { PATH: process.env.PATH, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, out: stdout, err: stderr }))
  })
}
const hasH2load = ((): boolean => {
  try { execFileSync('h2load', ['--version'], { stdio: 'ignore' }); return true } catch { return false }
})()
const noH2load = hasH2load ? false : 'h2load is not installed (Debian: apt-get install nghttp2-client; .ci/run installs it)'

// h2load 1.52's summary, as it printed it for a window of the bench (trimmed to the lines read).
const SUMMARY = `Application protocol: h2
finished in 3.00s, 43040.00 req/s, 2.22MB/s
requests: 129120 total, 129370 started, 129120 done, 129100 succeeded, 20 failed, 10 errored, 2 timeout
status codes: 129090 2xx, 0 3xx, 7 4xx, 3 5xx
`

test('h2load\'s summary: requests done, req/s, and its failures (non-2xx answers and errored requests among them) as errors', () => {
  const r = parseH2load(SUMMARY)
  assert.deepEqual({ requests: r.requests, rps: r.rps, errors: r.errors, non2xx: r.non2xx }, { requests: 129120, rps: 43040, errors: 20, non2xx: 10 })
  assert.ok(Number.isNaN(r.p50) && Number.isNaN(r.p99), 'h2load prints no percentiles: none made up')
})

test('h2load\'s summary of a server that did not speak HTTP/2 is refused, not read as HTTP/2 figures', () => {
  assert.throws(() => parseH2load(SUMMARY.replace('Application protocol: h2\n', 'No protocol negotiated. Aborted.\n')), /did not speak HTTP\/2/)
})

test('h2load\'s own summary of 20 answers that were all 404: each counted once as an error and as non-2xx', { skip: noH2load }, async (t) => {
  const tls = await loadTlsMaterial(undefined, undefined)
  const app = Fastify({ http2: true, https: { key: tls.key, cert: tls.cert } })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  // Asynchronous, with a bound: the server answering h2load runs on this test's event loop.
  const out = await new Promise<string>((resolve, reject) => {
    execFile('h2load', ['-c', '2', '-n', '20', `https://127.0.0.1:${port}/nope`], { encoding: 'utf8', timeout: 30_000 },
      (err, stdout) => { if (err !== null) reject(err); else resolve(stdout) })
  })
  const r = parseH2load(out)
  assert.deepEqual({ requests: r.requests, errors: r.errors, non2xx: r.non2xx }, { requests: 20, errors: 20, non2xx: 20 }, out)
})

test('bench:ab on HTTP/2: a bare server against the journey, both answering h2load, B/A per window', { skip: noH2load }, async () => {
  // Busy windows kept (KEEP_BUSY_WINDOWS), as in bench-ab.test.ts: other test files share the core.
  const { code, out, err } = await run({ A_VARIANT: 'bare', VARIANT: 'journey-metrics', ROUTE: 'h2', PAIRS: '1', WINDOWS: '2', WINDOW_S: '1', WARM: '1', KEEP_BUSY_WINDOWS: '1' })
  assert.equal(code, 0, `${err}${out}`)
  assert.match(out, /^GET \/ over HTTP\/2, /m)
  assert.match(out, /^ {2}A: bare /m)
  assert.match(out, /^ {2}B: journey-metrics /m)
  // A window is printed only when h2load negotiated h2 with both servers and no answer failed.
  const windows = out.match(/^pair 1 window \d {2}A [\d.]+ \+ [\d.]+ µs {2}B [\d.]+ \+ [\d.]+ µs .* B\/A \d\.\d{3}$/gm) ?? []
  assert.equal(windows.length, 2, out)
  assert.match(out, /^B\/A CPU per request: median \d\.\d{3}, range/m)
})

test('bench:ab refuses, before starting a server, a variant not measured on HTTP/2', async () => {
  const { code, err } = await run({ A_VARIANT: 'bare', VARIANT: 'usual-100pct', ROUTE: 'h2' })
  assert.notEqual(code, 0)
  assert.match(err, /B: usual-100pct is not measured on HTTP\/2/)
})
