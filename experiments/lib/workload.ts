// A bounded, gentle mixed workload over every demo route: HTTP and HTTPS, reused and fresh connections
// (so accept and TLS appear in waterfalls), JSON, gzip and protobuf bodies, CPU and I/O handlers, a large
// download, an unmatched route and a body that is not JSON (a 400: real traffic has bad input, and its error
// handling is a gap of its own). Used by `npm run demo` and by the compose stack's `load` profile.
import { setTimeout as sleep } from 'node:timers/promises'
import { gzipSync } from 'node:zlib'
import { Agent, request } from 'undici'
import { encodeOrder } from '../../src/app/orders.ts'

export interface WorkloadOptions {
  httpUrl: string
  httpsUrl: string
  /** Stops after this long or after maxRequests, whichever comes first. */
  seconds: number
  maxRequests?: number
  /** Requests in flight at once; each loop pauses pauseMs between its requests. */
  concurrency?: number
  pauseMs?: number
  signal?: AbortSignal
  onError?: (what: string, err: Error) => void
}

type Job = [method: string, path: string, headers?: Record<string, string>, body?: string | Buffer]

const order = Buffer.from(encodeOrder({ id: 'demo', customer: 'ada', currency: 'EUR', items: [{ sku: 'book', quantity: 2, unitPriceCents: 1999 }] }))
const JOBS: readonly Job[] = [
  ['GET', '/'],
  ['POST', '/echo', { 'content-type': 'application/json' }, JSON.stringify({ message: 'hello', items: [1, 2, 3] })],
  ['POST', '/echo', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(JSON.stringify({ message: 'x'.repeat(20_000) }))],
  ['POST', '/orders', { 'content-type': 'application/x-protobuf' }, order],
  ['GET', '/compute?ms=15'],
  ['GET', '/compute?ms=15&offload=1'],
  ['GET', '/io?ms=40'],
  ['GET', '/account?auth_ms=5', { authorization: 'Bearer demo' }],
  ['GET', '/report?items=2000', { 'accept-encoding': 'gzip, deflate, br, zstd' }], // as a browser asks: compressed, in write
  ['GET', '/download?kb=512'],
  ['GET', '/no-such-route'],
  ['POST', '/echo', { 'content-type': 'application/json' }, '{"message":']
]

/** Runs until time, count or the signal says stop; resolves with how many requests were sent and failed. */
export async function runWorkload (opts: WorkloadOptions): Promise<{ sent: number, failed: number }> {
  const { concurrency = 1, pauseMs = 50, maxRequests = Infinity } = opts
  const tls = { rejectUnauthorized: false } // the dev certificate is self-signed
  const keepAlive = new Agent({ connect: tls })
  const end = Date.now() + opts.seconds * 1000
  let sent = 0
  let failed = 0
  const stopped = (): boolean => opts.signal?.aborted === true || Date.now() >= end || sent >= maxRequests

  async function loop (): Promise<void> {
    while (!stopped()) {
      const n = sent++
      const [method, path, headers, body] = JOBS[n % JOBS.length]!
      // The job's place plus the round, modulo 12: over 12 rounds every job meets both schemes and both kinds
      // of connection, whatever the number of jobs (from n alone, 12 jobs would pin each job to one of each).
      const k = (n % JOBS.length + Math.floor(n / JOBS.length)) % 12
      // A fresh connection every fourth request: accept (and the TLS handshake) show up in waterfalls.
      const fresh = k % 4 === 0 ? new Agent({ connect: tls, pipelining: 0 }) : undefined
      const base = k % 3 === 0 ? opts.httpsUrl : opts.httpUrl
      try {
        const r = await request(base + path, { method: method as 'GET', headers, body, dispatcher: fresh ?? keepAlive, signal: opts.signal })
        await r.body.arrayBuffer() // read it all: a client that stops early shows up as an aborted request
      } catch (err) {
        if (opts.signal?.aborted !== true) { failed++; opts.onError?.(`${method} ${base}${path}`, err as Error) }
      }
      if (fresh !== undefined) void fresh.close()
      await sleep(pauseMs)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  await keepAlive.close()
  return { sent, failed }
}
