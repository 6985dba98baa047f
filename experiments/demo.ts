// npm run demo: the server plus a gentle mixed workload for a bounded time, so the built-in journey page
// (printed below) fills with live requests in one command. Ctrl-C stops both.
//
//   DEMO_SECONDS=120 npm run demo
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { runWorkload } from './lib/workload.ts'

const seconds = Number(process.env.DEMO_SECONDS ?? 300)
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
// Server-Timing on: a page opened in a browser shows each request's stages in devtools (Network → Timing).
const server = spawn(process.execPath, [main], { env: { LOG_LEVEL: 'warn', JOURNEY_SERVER_TIMING: 'true', ...process.env }, stdio: ['ignore', 'pipe', 'inherit'] })
let out = ''
server.stdout!.on('data', (d: Buffer) => { out += d.toString() })

// With LOG_LEVEL=warn the server prints no 'listening' line: wait for its admin port instead.
const httpPort = Number(process.env.HTTP_PORT ?? 3000)
const httpsPort = Number(process.env.HTTPS_PORT ?? 3443)
const adminHost = process.env.METRICS_HOST ?? '127.0.0.1'
const adminPort = Number(process.env.METRICS_PORT ?? 9464)
for (let i = 0; ; i++) {
  if (server.exitCode !== null) { process.stderr.write(out); process.exit(1) }
  try { await (await request(`http://${adminHost}:${adminPort}/readyz`)).body.text(); break } catch { await sleep(100) }
  if (i > 200) throw new Error('the server did not start')
}
console.log(`\n  The journey of live requests: http://${adminHost === '0.0.0.0' ? '127.0.0.1' : adminHost}:${adminPort}/journey\n` +
  `  Your own, in a browser's devtools (Network → Timing → Server Timing): http://127.0.0.1:${httpPort}/compute?ms=50\n` +
  `  (a mixed workload runs for ${seconds} s; Ctrl-C stops it and the server)\n`)

const abort = new AbortController()
let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  abort.abort()
  server.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
server.on('exit', (code) => process.exit(code ?? 0))

const { sent } = await runWorkload({
  httpUrl: `http://127.0.0.1:${httpPort}`,
  httpsUrl: `https://127.0.0.1:${httpsPort}`,
  seconds,
  signal: abort.signal,
  onError: (what, err) => { if (!stopping) console.error(`${what}: ${err.message}`) }
})
console.log(`sent ${sent} requests; stopping the server`)
stop()
