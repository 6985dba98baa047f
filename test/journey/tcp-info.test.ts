// The accept queue seen from inside the process, through TCP_INFO: a connection (with its request) that
// arrives while the event loop is blocked waits in the kernel, and its accept span and histogram say how
// long — compared here with the wait the test itself imposed. Needs the addon npm ci builds (Linux).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { request } from 'undici'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import { channels, summarize, type RequestRecord } from '../../src/journey/index.ts'
import type { RecentRequest } from '../../src/journey/consume-recent.ts'
import { renderRow } from '../../src/journey/page.ts'
import { tcpInfoUnavailable } from '../../src/journey/tcp-info.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { sample, scrape } from '../../experiments/lib/metrics.ts'

const skip = tcpInfoUnavailable !== undefined && process.env.CI !== 'true' ? tcpInfoUnavailable : false
let t: TestServer
before(async () => { if (skip === false) t = await startTestServer() })
after(async () => { await t?.close() })

/** A client in a worker thread connects and sends a request while this thread blocks for `blockMs`. */
function requestWhileBlocked (port: number, blockMs: number): { worker: Worker, sentAt: number } {
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(`
    const { connect } = require('node:net')
    const { workerData: { port, flag }, parentPort } = require('node:worker_threads')
    const s = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n', () => {
      Atomics.store(flag, 0, 1); Atomics.notify(flag, 0)
    }))
    s.on('data', () => {}); s.on('error', () => {})
    parentPort.on('message', () => { s.destroy(); process.exit(0) })
  `, { eval: true, workerData: { port, flag } })
  worker.unref() // a failed assertion must not leave the test process waiting for it
  Atomics.wait(flag, 0, 0, 10_000) // returns 'not-equal' if the worker was done first: also fine
  assert.equal(Atomics.load(flag, 0), 1, 'the worker connected and sent its request')
  const sentAt = performance.timeOrigin + performance.now()
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, blockMs) // the event loop is blocked meanwhile
  return { worker, sentAt }
}

test('the addon is built by npm ci on Linux (CI fails rather than skip)', { skip: process.platform !== 'linux' && 'Linux only' }, () => {
  assert.equal(tcpInfoUnavailable, undefined)
})

test('a connection accepted after 80 ms in the kernel says so on its accept span and in the histogram', { skip }, async (ctx) => {
  const port = Number(new URL(t.http).port)
  const { worker, sentAt } = requestWhileBlocked(port, 80)
  const spans = await t.spansWhere(s => s.some(x => x.name === 'journey.accept'))
  worker.postMessage('stop')
  const accept = spans.find(x => x.name === 'journey.accept')!
  assert.equal(accept.attributes['journey.accept.queue_wait_measured'], true)
  const wait = accept.attributes['journey.accept.kernel_wait_ms'] as number
  const dataWait = accept.attributes['journey.accept.data_wait_ms'] as number
  // What the test saw: from the request being written (a bit after it reached the kernel) to accept.
  const acceptedAt = accept.startTime[0] * 1000 + accept.startTime[1] / 1e6
  const observed = acceptedAt - sentAt
  ctx.diagnostic(`80 ms block: accepted ${observed.toFixed(1)} ms after the request was sent; TCP_INFO kernel_wait_ms ${wait}, data_wait_ms ${dataWait}, bytes_waiting ${String(accept.attributes['journey.accept.bytes_waiting'])}`)
  // Jiffies make the kernel's figure a multiple of 4 ms (HZ=250); it may also start a little before sentAt.
  assert.ok(observed >= 79, `accepted ${observed} ms after sending`)
  assert.ok(Math.abs(wait - observed) <= 10, `kernel wait ${wait} ms vs ${observed.toFixed(1)} ms observed`)
  assert.ok(Math.abs(dataWait - observed) <= 10, `request bytes waited ${dataWait} ms vs ${observed.toFixed(1)} ms observed`)
  assert.ok((accept.attributes['journey.accept.bytes_waiting'] as number) > 0, 'the request was already in the kernel')
  const metrics = await (await request(`${t.admin}/metrics`)).body.text()
  const count = /^journey_accept_kernel_wait_seconds_count\{listener="http"\} (\d+)$/m.exec(metrics)
  assert.ok(count !== null && Number(count[1]) >= 1)
  const over64ms = /^journey_accept_kernel_wait_seconds_bucket\{(?:listener="http",le="0.064"|le="0.064",listener="http")\} (\d+)$/m.exec(metrics)
  assert.ok(over64ms !== null && Number(over64ms[1]) < Number(count[1]), 'the blocked connection is in a bucket above 64 ms')
  // Its bytes' wait before read counts from their arrival, before accept; the page's row gives the wait
  // after accept to the kernel in full, never the 80 ms of a gap shorter than that.
  const connectionId = spans.find(x => x.name === 'GET /')!.attributes['journey.connection.id'] as number
  const html = await (await request(`${t.admin}/journey`)).body.text()
  const row = html.split('<tr class="req"').find(r => r.includes(`>#${connectionId}/1`))
  assert.ok(row !== undefined, `connection ${connectionId}'s row`)
  assert.match(row, /the wait before its first byte was read, all of it with its bytes already in the kernel, waiting for the event loop\)/)
})

test('a connection accepted at once reports a wait under one jiffy or two', { skip }, async () => {
  t.exporter.reset()
  const r = await request(`${t.http}/`, { reset: true } as never)
  await r.body.text()
  const spans = await t.spansWhere(s => s.some(x => x.name === 'journey.accept'))
  const accept = spans.find(x => x.name === 'journey.accept')!
  const wait = accept.attributes['journey.accept.kernel_wait_ms'] as number
  assert.ok(wait <= 8, `kernel wait ${wait} ms with an idle event loop`)
  // The kernel's smoothed RTT from the handshake (SYN-ACK to ACK): tens of µs on loopback. A misread field of
  // struct tcp_info would read 0 or a number from elsewhere in it (ms, bytes).
  const rtt = accept.attributes['journey.tcp.rtt_us'] as number
  assert.ok(Number.isInteger(rtt) && rtt > 0 && rtt < 5000, `journey.tcp.rtt_us ${rtt} on loopback`)
})

test('connections accepted at once land in the histogram\'s 0 bucket, so an idle server reads p50 and p99 0, not an interpolated 2–4 ms', { skip }, async () => {
  const zero = async (): Promise<number> =>
    sample(await scrape(`${t.admin}/metrics`), 'journey_accept_kernel_wait_seconds_bucket', { le: '0', listener: 'http' })
  // A jiffy may tick between the client's ACK and accept (then 4 ms): most of ten still read 0. On a busy
  // CI machine (the host stealing the VM's CPUs: bench/NOTES.md) a round can read fewer — one read 4 of 10 —
  // so up to three rounds: a round where most read 0 passes; a 0 bucket that never fills fails all three.
  const rounds: number[] = []
  for (let round = 0; round < 3; round++) {
    const before = await zero()
    for (let i = 0; i < 10; i++) {
      const r = await request(`${t.http}/`, { reset: true } as never)
      await r.body.text()
    }
    rounds.push(await zero() - before)
    if (rounds.at(-1)! >= 5) break
  }
  assert.ok(rounds.at(-1)! >= 5, `${rounds.join(', ')} of 10 in the 0 bucket, round by round`)
})

test('a request that arrives on a keep-alive connection while the loop is blocked: its read span says how long its bytes waited', { skip }, async (ctx) => {
  t.exporter.reset()
  const port = Number(new URL(t.http).port)
  // flags: [0] first response received, [1] main is about to block, [2] second request written
  const flag = new Int32Array(new SharedArrayBuffer(12))
  const worker = new Worker(`
    const { connect } = require('node:net')
    const { workerData: { port, flag }, parentPort } = require('node:worker_threads')
    const req = 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'
    let got = ''
    const s = connect(port, '127.0.0.1', () => s.write(req))
    s.on('data', (d) => {
      got += d
      if (Atomics.load(flag, 0) === 0 && got.includes('journey')) {
        Atomics.store(flag, 0, 1); Atomics.notify(flag, 0)
        Atomics.wait(flag, 1, 0, 10000)
        s.write(req, () => { Atomics.store(flag, 2, 1); Atomics.notify(flag, 2) })
      }
    })
    s.on('error', () => {})
    parentPort.on('message', () => { s.destroy(); process.exit(0) })
  `, { eval: true, workerData: { port, flag } })
  worker.unref() // a failed assertion must not leave the test process waiting for it
  await Atomics.waitAsync(flag, 0, 0, 10_000).value
  Atomics.store(flag, 1, 1)
  Atomics.notify(flag, 1)
  // 'not-equal' is fine too: the worker wrote it before this thread began to wait (seen in CI).
  Atomics.wait(flag, 2, 0, 10_000)
  assert.equal(Atomics.load(flag, 2), 1, 'the second request was written')
  const sentAt = performance.timeOrigin + performance.now()
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 80) // blocked: the request waits in the kernel
  const spans = await t.spansWhere(s => s.some(x => x.name === 'journey.read' && x.attributes['journey.read.kernel_wait_ms'] !== undefined &&
    s.some(r => r.name === 'GET /' && r.attributes['journey.connection.request_index'] === 2)))
  worker.postMessage('stop')
  const second = spans.find(r => r.name === 'GET /' && r.attributes['journey.connection.request_index'] === 2)!
  const read = spans.find(x => x.name === 'journey.read' && x.parentSpanContext?.spanId === second.spanContext().spanId)!
  const wait = read.attributes['journey.read.kernel_wait_ms'] as number
  const readStart = read.startTime[0] * 1000 + read.startTime[1] / 1e6
  const observed = readStart - sentAt
  ctx.diagnostic(`80 ms block: parser reached the request ${observed.toFixed(1)} ms after it was sent; TCP_INFO read kernel_wait_ms ${wait}`)
  assert.ok(observed >= 79)
  assert.ok(Math.abs(wait - observed) <= 10, `kernel read wait ${wait} ms vs ${observed.toFixed(1)} ms observed`)
  const metrics = await (await request(`${t.admin}/metrics`)).body.text()
  assert.match(metrics, /^journey_read_kernel_wait_seconds_count\{listener="http"\} [1-9]\d*$/m)
  // On the journey page the request starts at its read, so the wait before it is in no bar: its time says it.
  const html = await (await request(`${t.admin}/journey`)).body.text()
  const row = html.split('<tr class="req"').find(r => r.includes(`>#${String(second.attributes['journey.connection.id'])}/2`))
  assert.ok(row !== undefined, 'the second request\'s row')
  assert.match(row, new RegExp(`title="from its first byte read; before that its bytes had waited ≈ ${wait} ms in the kernel's receive queue`))
})

test('an HTTPS request is measured on the TCP socket under its TLS socket', { skip }, async () => {
  t.exporter.reset()
  const r = await request(`${t.https}/`, { dispatcher: t.insecure })
  await r.body.text()
  const spans = await t.spansWhere(s => s.some(x => x.name === 'journey.read'))
  const wait = spans.find(x => x.name === 'journey.read')!.attributes['journey.read.kernel_wait_ms']
  assert.equal(typeof wait, 'number', 'measured')
  assert.ok((wait as number) >= 0 && (wait as number) <= 8, `an idle loop reads at once: ${String(wait)} ms`)
})

test('a connection\'s first request that arrives while the loop is blocked: the wait before it was the server\'s, and span, log summary and page say so', { skip }, async (ctx) => {
  t.exporter.reset()
  const records: RequestRecord[] = []
  const keep = (m: unknown): void => { records.push(m as RequestRecord) }
  channels.request.subscribe(keep)
  ctx.after(() => channels.request.unsubscribe(keep))
  const port = Number(new URL(t.http).port)
  // flags: [0] connected, [1] main is about to block, [2] request written
  const flag = new Int32Array(new SharedArrayBuffer(12))
  const worker = new Worker(`
    const { connect } = require('node:net')
    const { workerData: { port, flag }, parentPort } = require('node:worker_threads')
    const s = connect(port, '127.0.0.1', () => {
      Atomics.store(flag, 0, 1); Atomics.notify(flag, 0)
      Atomics.wait(flag, 1, 0, 10000)
      s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n', () => { Atomics.store(flag, 2, 1); Atomics.notify(flag, 2) })
    })
    s.on('data', () => {}); s.on('error', () => {})
    parentPort.on('message', () => { s.destroy(); process.exit(0) })
  `, { eval: true, workerData: { port, flag } })
  worker.unref() // a failed assertion must not leave the test process waiting for it
  await Atomics.waitAsync(flag, 0, 0, 10_000).value
  await new Promise(resolve => setTimeout(resolve, 20)) // the server accepts it, idle: nothing in its accept queue
  Atomics.store(flag, 1, 1)
  Atomics.notify(flag, 1)
  Atomics.wait(flag, 2, 0, 10_000) // 'not-equal': written before this thread began to wait, also fine
  assert.equal(Atomics.load(flag, 2), 1, 'the request was written')
  const sentAt = performance.timeOrigin + performance.now()
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 80) // blocked: the request waits in the kernel
  const spans = await t.spansWhere(s => s.some(x => x.name === 'GET /' && x.attributes['journey.gap.before_request_ms'] !== undefined))
  worker.postMessage('stop')
  const root = spans.find(x => x.name === 'GET /')!
  const child = (name: string): ReadableSpan => spans.find(x => x.name === name && x.parentSpanContext?.spanId === root.spanContext().spanId)!
  const wait = child('journey.read').attributes['journey.read.kernel_wait_ms'] as number
  const acceptWait = child('journey.accept').attributes['journey.accept.kernel_wait_ms'] as number
  const beforeRequest = root.attributes['journey.gap.before_request_ms'] as number
  const observed = (child('journey.read').startTime[0] * 1000 + child('journey.read').startTime[1] / 1e6) - sentAt
  ctx.diagnostic(`80 ms block after accept: before_request gap ${beforeRequest.toFixed(1)} ms, read ${observed.toFixed(1)} ms after sending; TCP_INFO read kernel_wait_ms ${wait}, accept kernel_wait_ms ${acceptWait}`)
  assert.ok(observed >= 79)
  assert.ok(beforeRequest >= observed, 'the gap holds the wait')
  assert.ok(Math.abs(wait - observed) <= 10, `kernel read wait ${wait} ms vs ${observed.toFixed(1)} ms observed`)
  assert.ok(acceptWait < 40, `accepted before the block, not during it: ${acceptWait} ms in the accept queue`)

  // The log line's summary: the same two figures as the spans.
  const rec = records.find(r => r.conn.id === root.attributes['journey.connection.id'])!
  const summary = summarize(rec)!
  assert.equal(summary.readKernelWaitMs, wait)
  assert.equal(summary.acceptKernelWaitMs, acceptWait)
  // The page: the read bar says where the wait was, and the row's time does not call it the client's.
  const snap = await (await request(`${t.admin}/journey/snapshot.json`)).body.json() as {
    recent: Array<{ connectionId: number, readKernelWaitMs?: number, acceptKernelWaitMs?: number }>
    connections: { readKernelWait: { p50: number, p99: number, count: number } }
  }
  const row = snap.recent.find(r => r.connectionId === rec.conn.id)!
  assert.equal(row.readKernelWaitMs, wait)
  assert.equal(row.acceptKernelWaitMs, acceptWait)
  // The minute's figure above the tables: this wait among the traced requests' (the earlier tests' blocks too;
  // the rest read at once), so at the p99 (bins ≈ 3 % wide).
  const minute = snap.connections.readKernelWait
  assert.ok(minute.count >= 1 && minute.p99 >= wait * 0.96, `before read, p50 ${minute.p50}, p99 ${minute.p99} ms of ${minute.count} with a ${wait} ms wait`)
  const html = await (await request(`${t.admin}/journey`)).body.text()
  assert.match(html, new RegExp(`title="read [^"]*before it, ≈ ${wait} ms with its bytes in the kernel's receive queue`))
  assert.match(html, new RegExp(`the wait before its first byte was read, ≈ ${wait} ms of it with its bytes in the kernel waiting for the event loop`))
  assert.match(html, /before read: p50 <b>[^<]+ ms<\/b>, p99 <b>≈ \d+ ms<\/b> \(\d+ requests measured\)<\/span>/)
})

test('the page splits a first request\'s gap only for a kernel wait longer than a jiffy\'s doubt', () => {
  // A first request: accept, a 3 ms gap, then its read. TCP_INFO read 4 ms before read: one jiffy tick may
  // be all of that, so the page does not call the client's 3 ms the server's; 40 ms it does.
  const row = (readKernelWaitMs: number): RecentRequest => ({
    id: 1, at: 0, method: 'GET', route: '/', path: '/', status: 200, scheme: 'http', http2: false, aborted: false,
    abortedBy: undefined, durationMs: 50, requestMs: 46.9, connectionId: 1, requestIndex: 1, traceId: undefined,
    backpressure: undefined, unackedBytes: undefined, bodyReceivedMs: undefined, bodyParsedMs: undefined,
    handlerSyncMs: undefined, acceptKernelWaitMs: 0, readKernelWaitMs,
    stages: [{ stage: 'accept', startMs: 0, durationMs: 0.1 }, { stage: 'read', startMs: 3.1, durationMs: 0.1 }, { stage: 'handler', startMs: 3.2, durationMs: 46.8 }]
  })
  assert.doesNotMatch(renderRow(row(4)), /waiting for the event loop/)
  assert.match(renderRow(row(4)), /title="read [^"]*before it, ≈ 4 ms with its bytes in the kernel's receive queue/, 'the figure itself is still shown')
  assert.match(renderRow(row(40)), /the wait before its first byte was read, all of it with its bytes already in the kernel, waiting for the event loop\)/)
})
