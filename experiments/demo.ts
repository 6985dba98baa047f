// npm run demo: the server plus a gentle mixed workload for a bounded time, so the built-in journey page
// (printed below) fills with live requests in one command. Ctrl-C stops both.
//
//   DEMO_SECONDS=120 npm run demo
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { encodeOrder } from '../src/app/orders.ts'

const seconds = Number(process.env.DEMO_SECONDS ?? 300)
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
const server = spawn(process.execPath, [main], { env: { LOG_LEVEL: 'warn', ...process.env }, stdio: ['ignore', 'pipe', 'inherit'] })
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
  `  (a mixed workload runs for ${seconds} s; Ctrl-C stops it and the server)\n`)

const keepAlive = new Agent({ connect: { rejectUnauthorized: false } })
// A fresh connection per request: accept (and the TLS handshake) show up in every waterfall.
const fresh = (): Agent => new Agent({ connect: { rejectUnauthorized: false }, pipelining: 0 })
const order = Buffer.from(encodeOrder({ id: 'demo', customer: 'ada', currency: 'EUR', items: [{ sku: 'book', quantity: 2, unitPriceCents: 1999 }] }))
const jobs: Array<[string, string, Record<string, string>?, (string | Buffer)?]> = [
  ['GET', '/'],
  ['POST', '/echo', { 'content-type': 'application/json' }, JSON.stringify({ message: 'hello', items: [1, 2, 3] })],
  ['POST', '/echo', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(JSON.stringify({ message: 'x'.repeat(20_000) }))],
  ['POST', '/orders', { 'content-type': 'application/x-protobuf' }, order],
  ['GET', '/compute?ms=15'],
  ['GET', '/compute?ms=15&offload=1'],
  ['GET', '/io?ms=40'],
  ['GET', '/download?kb=512'],
  ['GET', '/no-such-route']
]

let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  server.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
server.on('exit', (code) => { void keepAlive.close(); process.exit(code ?? 0) })

const end = Date.now() + seconds * 1000
let n = 0
while (!stopping && Date.now() < end) {
  const [method, path, headers, body] = jobs[n % jobs.length]!
  const secure = n % 3 === 0
  const newConnection = n % 4 === 0
  const dispatcher = newConnection ? fresh() : keepAlive
  const base = secure ? `https://127.0.0.1:${httpsPort}` : `http://127.0.0.1:${httpPort}`
  try {
    const r = await request(base + path, { method: method as 'GET', headers, body, dispatcher })
    await r.body.arrayBuffer() // read it all: a client that stops early shows up as an aborted request
  } catch (err) {
    if (!stopping) console.error(`${method} ${path}: ${(err as Error).message}`)
  }
  if (newConnection) void dispatcher.close()
  n++
  await sleep(50)
}
console.log(`sent ${n} requests; stopping the server`)
stop()
