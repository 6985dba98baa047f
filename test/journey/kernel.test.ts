// The kernel's view of our listening sockets, against the real kernel: connections queue in the accept queue
// while the event loop is blocked, a full queue counts ListenOverflows, and /metrics reports both.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { Worker } from 'node:worker_threads'
import { request } from 'undici'
import { acceptQueueLength, listenInodesOnPort, socketInode, tcpExt } from '../../src/journey/proc-net.ts'
import { readListenQueue, tcpInfoUnavailable } from '../../src/journey/tcp-info.ts'
import { nextProcRead, PEAK_WINDOW_S, PROC_DUTY, startKernelSampler, threadCpuMs, WindowMax } from '../../src/journey/kernel-sampler.ts'
import { startTestServer } from '../helpers/server.ts'

const linux = process.platform === 'linux'

/**
 * Opens `count` connections from a worker thread while this thread's event loop is blocked, so none of them
 * can be accepted: the kernel completes the handshakes and queues them. Runs `whileBlocked` before unblocking.
 */
function connectWhileBlocked<T> (port: number, count: number, settleMs: number, whileBlocked: () => T): { result: T, worker: Worker } {
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(`
    const { connect } = require('node:net')
    const { workerData: { port, count, flag, settleMs } } = require('node:worker_threads')
    const sockets = []
    let opened = 0
    for (let i = 0; i < count; i++) {
      const s = connect(port, '127.0.0.1', () => { if (++opened === count) setTimeout(done, settleMs) })
      s.on('error', () => {})
      sockets.push(s)
    }
    // Connections beyond a full queue may never complete their connect on the client side either.
    const timer = setTimeout(done, 1000)
    function done () { clearTimeout(timer); Atomics.store(flag, 0, 1); Atomics.notify(flag, 0) }
    require('node:worker_threads').parentPort.on('message', () => { for (const s of sockets) s.destroy(); process.exit(0) })
  `, { eval: true, workerData: { port, count, flag, settleMs } })
  worker.unref() // a failed assertion must not leave the test process waiting for it
  Atomics.wait(flag, 0, 0, 10_000) // returns 'not-equal' if the worker was done first: also fine
  assert.equal(Atomics.load(flag, 0), 1, 'the worker connected')
  return { result: whileBlocked(), worker }
}

function inodeOf (server: Server): string {
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  return /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))![1]!
}

test('connections that arrive while the loop is blocked wait in the accept queue; the LISTEN row shows them', { skip: !linux && 'needs Linux /proc' }, async () => {
  const accepted: unknown[] = []
  const server = createServer(s => { accepted.push(s); s.destroy() })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const inode = inodeOf(server)
  assert.equal(acceptQueueLength(readFileSync('/proc/net/tcp', 'utf8'), inode), 0, 'nothing waiting before')
  const { result: queued, worker } = connectWhileBlocked((server.address() as AddressInfo).port, 5, 50,
    () => acceptQueueLength(readFileSync('/proc/net/tcp', 'utf8'), inode))
  assert.equal(queued, 5, 'five handshaken connections waiting for accept()')
  await new Promise(resolve => setTimeout(resolve, 100))
  assert.equal(accepted.length, 5, 'accepted as soon as the loop was free')
  assert.equal(acceptQueueLength(readFileSync('/proc/net/tcp', 'utf8'), inode), 0)
  worker.postMessage('stop')
  server.close()
})

test('TCP_INFO on the listening socket sees the same queue as /proc, and its real size', { skip: (!linux || tcpInfoUnavailable !== undefined) && process.env.CI !== 'true' && 'needs Linux and the TCP_INFO addon' }, async () => {
  const accepted: unknown[] = []
  const server = createServer(s => { accepted.push(s); s.destroy() })
  await new Promise<void>(resolve => server.listen({ port: 0, host: '127.0.0.1', backlog: 7 }, resolve))
  assert.deepEqual(readListenQueue(server), { length: 0, capacity: 7 })
  const inode = inodeOf(server)
  const { result, worker } = connectWhileBlocked((server.address() as AddressInfo).port, 4, 50,
    () => ({ info: readListenQueue(server), proc: acceptQueueLength(readFileSync('/proc/net/tcp', 'utf8'), inode) }))
  assert.deepEqual(result, { info: { length: 4, capacity: 7 }, proc: 4 })
  await new Promise(resolve => setTimeout(resolve, 100))
  assert.equal(accepted.length, 4)
  worker.postMessage('stop')
  server.close()
})

test('a full accept queue counts TcpExt ListenOverflows', { skip: !linux && 'needs Linux /proc' }, async () => {
  const server = createServer(s => s.destroy())
  await new Promise<void>(resolve => server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, resolve))
  const overflows = (): number => tcpExt(readFileSync('/proc/net/netstat', 'utf8')).get('ListenOverflows')!
  const before = overflows()
  assert.ok(Number.isInteger(before))
  // backlog 1 holds two connections (the kernel's check is "more than the backlog"); the others overflow.
  const { result, worker } = connectWhileBlocked((server.address() as AddressInfo).port, 8, 300, () => ({
    after: overflows(),
    queued: acceptQueueLength(readFileSync('/proc/net/tcp', 'utf8'), inodeOf(server))
  }))
  assert.equal(result.queued, 2)
  assert.ok(result.after > before, `ListenOverflows ${before} → ${result.after}`)
  worker.postMessage('stop')
  server.close()
})

test('an inode that appears in another column is not mistaken for a LISTEN row', () => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:0BB9 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  4242        0 777 1 0000000000000000 20 4 30 10 -1'
  ].join('\n')
  assert.equal(acceptQueueLength(text, '4242'), 3)
  assert.equal(acceptQueueLength(text, '777'), undefined, 'ESTABLISHED rows are not listeners')
  assert.equal(acceptQueueLength(text, '1'), undefined)
})

test('the LISTEN sockets on a port are found whatever their address, and not the connections on it', () => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0',
    '   1: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1',
    '   2: 0200007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0',
    '   3: 0100007F:1BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0',
    '   4: 0100007F:9C40 0100007F:0BB8 01 00000000:00000000 00:00000000 00000000     0        0 888 1 0000000000000000 20 4 30 10 -1'
  ].join('\n')
  assert.deepEqual(listenInodesOnPort(text, 3000), ['4242', '4343'])
  assert.deepEqual(listenInodesOnPort(text, 7096), ['5555'])
  assert.deepEqual(listenInodesOnPort(text, 40000), [], 'a client\'s port in a connection is not a listener')
  const v6 = '   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0'
  assert.deepEqual(listenInodesOnPort(v6, 3000), ['99'])
  assert.equal(socketInode('socket:[4242]'), '4242')
  assert.equal(socketInode('pipe:[4242]'), undefined, 'a parent\'s pipe is not a socket')
})

test('/metrics reports each listener\'s accept queue and capacity, and the namespace\'s listen overflows', { skip: !linux && 'needs Linux /proc' }, async () => {
  const s = await startTestServer()
  after(() => s.close())
  const text = await (await request(`${s.admin}/metrics`)).body.text()
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))
  for (const listener of ['http', 'https']) {
    assert.match(text, new RegExp(`^journey_accept_queue_length\\{listener="${listener}"\\} 0$`, 'm'))
    assert.match(text, new RegExp(`^journey_accept_queue_capacity\\{listener="${listener}"\\} ${Math.min(511, somaxconn)}$`, 'm'))
  }
  assert.match(text, /^journey_listen_overflows_total \d+$/m)
  assert.match(text, /^journey_listen_drops_total \d+$/m)
})

test('with JOURNEY_KERNEL_SAMPLE_MS, a queue built while the loop is blocked shows in journey_accept_queue_peak, for every scraper', { skip: !linux && 'needs Linux /proc' }, async (ctx) => {
  const s = await startTestServer({ JOURNEY_KERNEL_SAMPLE_MS: '5' })
  after(() => s.close())
  const peak = async (): Promise<number> => {
    const text = await (await request(`${s.admin}/metrics`)).body.text()
    return Number(/^journey_accept_queue_peak\{listener="http"\} (\d+)$/m.exec(text)?.[1])
  }
  // No value until the worker thread has taken its first sample; then 0. Up to 10 s: on a busy machine a
  // thread can take seconds to start (the accept experiment's samplers once had not in a CI run).
  let first = NaN
  for (const deadline = Date.now() + 10_000; Date.now() < deadline && Number.isNaN(first);) {
    await new Promise(resolve => setTimeout(resolve, 20))
    first = await peak()
  }
  assert.equal(first, 0, 'nothing queued yet')
  const { worker } = connectWhileBlocked(Number(new URL(s.http).port), 6, 100, () => undefined)
  ctx.after(() => worker.terminate())
  const during = await peak()
  ctx.diagnostic(`peak in the last ${PEAK_WINDOW_S} s: ${during}`)
  assert.equal(during, 6, 'the six connections that waited while the loop was blocked')
  const text = await (await request(`${s.admin}/metrics`)).body.text()
  assert.match(text, /^journey_accept_queue_length\{listener="http"\} 0$/m, 'drained by the time the scrape ran')
  // A scrape does not consume the peak: a second scraper (Prometheus beside an experiment) sees it too.
  assert.equal(await peak(), 6, 'still there for the next scraper')
})

test('the sampler reads /proc at most PROC_DUTY of a core, however often it samples', () => {
  // A read that cost 5 ms of CPU (a storm's TIME_WAIT rows), ending at 1000 ms: the next may start at 1245 ms.
  assert.equal(nextProcRead(1000, 5), 1245)
  assert.ok(Math.abs(5 / (nextProcRead(1000, 5) + 5 - 1000) - PROC_DUTY) < 1e-9, 'reading takes PROC_DUTY of the time from one read\'s start to the next')
  assert.ok(nextProcRead(1000, 0.05) < 1005, 'a quick read (a quiet host) leaves a 5 ms sampler its pace')
})

test('a read\'s cost is the thread\'s CPU time: time the thread does not run (preempted, or waiting) costs nothing', () => {
  const cpu = threadCpuMs()
  const wall = performance.now()
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60)
  const spentCpu = threadCpuMs() - cpu
  assert.ok(performance.now() - wall >= 59)
  assert.ok(spentCpu < 20, `60 ms asleep cost ${spentCpu} ms of CPU`)
  // And it does count work (a deadline, not a duration: this thread may itself be preempted).
  const busy = threadCpuMs()
  for (const deadline = performance.now() + 5000; threadCpuMs() - busy < 10 && performance.now() < deadline;);
  assert.ok(threadCpuMs() - busy >= 10, 'a busy loop is CPU time')
})

test('the peak window keeps each second\'s deepest queue for its length, then forgets it', () => {
  const w = new WindowMax(3)
  assert.equal(w.max(100), -1, 'nothing sampled yet')
  w.record(100, 2)
  w.record(100, 5)
  w.record(100, 1)
  assert.equal(w.max(100), 5)
  w.record(101, 0)
  assert.equal(w.max(102), 5, 'second 100 is still inside (100, 102]... of a 3 s window')
  assert.equal(w.max(103), 0, 'second 100 has left the window; 101 remains')
  w.record(110, 3) // after a gap: old entries of the same ring positions must not come back
  assert.equal(w.max(110), 3)
  assert.equal(w.max(114), -1)
})

test('a sampler whose worker dies leaves the server running, warns once, and reports no stale peak', { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sampler-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const broken = join(dir, 'broken.mjs')
  writeFileSync(broken, 'throw new Error("sampler module failed to load")\n')
  const warned = new Promise<Error & { code?: string }>(resolve => process.once('warning', resolve))
  const sampler = startKernelSampler(10, pathToFileURL(broken))!
  // The sampler's worker is unref'd, and Node 22 reports its failure to load only if something else keeps
  // the loop alive (a server does); here nothing would, and the test's process ended waiting.
  const alive = setTimeout(() => {}, 10_000)
  const warning = await warned
  clearTimeout(alive)
  assert.equal(warning.code, 'REQUEST_JOURNEY_SAMPLER_FAILED')
  assert.match(warning.message, /sampler module failed to load/)
  assert.equal(sampler.peak(0), -1)
  sampler.close()
})

test('the sampler survives a listener whose fd is gone by the time it reads it, and goes on sampling the others', { skip: !linux && 'needs Linux /proc' }, async () => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  after(() => server.close())
  const sampler = startKernelSampler(10)!
  after(() => sampler.close())
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  sampler.watch(0, { fd: 1_000_000 }) // no such fd: before, readlink threw in the worker and its 'error' took the process down
  sampler.watch(1, { fd })
  // By inode, as a round-robin cluster worker watches its primary's socket; and an inode no socket has.
  sampler.watch(2, { inode: inodeOf(server) })
  sampler.watch(3, { inode: '1' })
  for (let i = 0; sampler.peak(1) < 0 || sampler.peak(2) < 0; i++) {
    assert.ok(i < 200, 'the live listener is sampled, by fd and by inode')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  assert.equal(sampler.peak(1), 0, 'an idle listener: nothing waiting')
  assert.equal(sampler.peak(2), 0, 'the same listener by its inode')
  assert.equal(sampler.peak(0), -1, 'the vanished one: no sample')
  assert.equal(sampler.peak(3), -1, 'no LISTEN socket with that inode: no sample')
})

// Only the thread startKernelSampler starts is the sampler. The plugin may be loaded in any other worker
// thread — a Vitest worker (pool: 'threads'), a Piscina task, an app served from a worker — whose
// workerData is not ours (or absent) and whose parentPort carries its host's messages. Before, the module
// took any worker thread for its own: with no workerData it threw on import (Vitest's threads pool), and
// with some it listened on the host's port and kept the thread alive with its timer.
test('the plugin loaded in some other worker thread serves and measures there, leaving the thread\'s messages and lifetime to its host', { timeout: 20_000 }, async () => {
  const urls = ['fastify', 'prom-client'].map(name => import.meta.resolve(name))
  urls.push(new URL('../../src/journey/index.ts', import.meta.url).href)
  const code = `
    const { parentPort } = require('node:worker_threads')
    ;(async () => {
      const [{ default: Fastify }, { Registry }, { createJourney, summarize }] = await Promise.all(process.argv.slice(2).map(u => import(u)))
      const hosts = () => {}
      parentPort.on('message', hosts) // the host's own use of its port
      const registry = new Registry()
      const journey = createJourney({ registry })
      const app = Fastify()
      await app.register(journey.plugin)
      let stages = []
      app.addHook('onResponse', async (request) => { setImmediate(() => { stages = Object.keys(summarize(request.journey).stages) }) })
      app.get('/', async () => ({ ok: true }))
      await app.listen({ port: 0, host: '127.0.0.1' })
      const r = await fetch('http://127.0.0.1:' + app.server.address().port + '/', { headers: { connection: 'close' } })
      await r.text()
      await new Promise(resolve => setTimeout(resolve, 50))
      await app.close(); journey.close()
      parentPort.postMessage({ status: r.status, stages, listeners: parentPort.listenerCount('message') })
      parentPort.off('message', hosts)
    })()
  `
  for (const workerData of [undefined, { intervalMs: 5, peaks: 'the host\'s' }]) {
    const worker = new Worker(code, { eval: true, argv: urls, workerData })
    after(() => worker.terminate()) // a thread kept alive (the failure this test is for) must not hang the run
    const errors: Error[] = []
    worker.on('error', err => errors.push(err))
    const report = new Promise<unknown>(resolve => worker.once('message', resolve))
    const exited = new Promise<number>(resolve => worker.once('exit', resolve))
    const outcome = await Promise.race([report, exited.then(code => ({ exited: code, errors: errors.map(e => e.message) }))])
    assert.deepEqual(outcome, { status: 200, stages: ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'], listeners: 1 }, `workerData ${JSON.stringify(workerData)}`)
    const timer = setTimeout(() => { void worker.terminate() }, 5_000)
    assert.equal(await exited, 0, 'the thread ends by itself once its host is done: no timer of the plugin keeps it alive')
    clearTimeout(timer)
  }
})

test('out of file descriptors at a scrape, the listen-overflow counters keep their value: no fall to 0 that would read as a reset and a jump', { skip: !linux && 'needs Linux /proc', timeout: 20_000 }, async () => {
  // A process of its own, with a low descriptor limit it can run into on purpose.
  const dir = mkdtempSync(join(tmpdir(), 'emfile-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const script = join(dir, 'app.mjs')
  writeFileSync(script, `
    import { openSync, closeSync } from 'node:fs'
    const [{ Registry }, { createJourney }] = await Promise.all(${JSON.stringify([import.meta.resolve('prom-client'), new URL('../../src/journey/index.ts', import.meta.url).href])}.map(u => import(u)))
    const registry = new Registry()
    const journey = createJourney({ registry })
    const value = async () => /^journey_listen_overflows_total (\\S+)$/m.exec(await registry.metrics())?.[1] ?? 'absent'
    const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))
    const before = await value()
    await sleep(1100) // past the one-second cache of the kernel reading
    const held = []
    try { for (;;) held.push(openSync('/dev/null', 'r')) } catch (err) { if (err.code !== 'EMFILE') throw err }
    const during = await value()
    for (const fd of held) closeSync(fd)
    await sleep(1100)
    const afterwards = await value()
    journey.close()
    console.log(JSON.stringify({ before, during, afterwards, held: held.length }))
  `)
  const { stdout } = await promisify(execFile)('bash', ['-c', `ulimit -n 256 && exec "${process.execPath}" "${script}"`], { timeout: 15_000 })
  const r = JSON.parse(stdout) as { before: string, during: string, afterwards: string, held: number }
  assert.ok(r.held > 0, 'descriptors ran out')
  assert.match(r.before, /^\d+$/)
  // With no overflow ever counted, a fall to 0 would not show: the overflow test above made some.
  assert.notEqual(r.before, '0', 'the namespace has counted overflows')
  assert.equal(r.during, r.before, 'the failed read keeps the last value')
  assert.ok(Number(r.afterwards) >= Number(r.before))
})
