// Where a response's write ends (hand-over.ts): at its last write returning, when the kernel took every byte
// then; at 'finish' otherwise. First real HTTP and TLS servers (TLS's default and fine mode's, over a
// CipherTap) and clients, the journey's timing of the socket's writes on a connection record of its own; then
// the journey's whole plugin over HTTP and HTTPS.
import assert from 'node:assert/strict'
import diagnostics from 'node:diagnostics_channel'
import { readSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer } from 'node:https'
import net, { type AddressInfo, type Server } from 'node:net'
import { test } from 'node:test'
import tls, { type Server as TlsServer } from 'node:tls'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'
import { channels } from '../../src/journey/publish.ts'
import { cipherTapListener } from '../../src/journey/cipher-tap.ts'
import { kConnection } from '../../src/journey/observe-parser.ts'
import type { ConnectionRecord, RequestRecord } from '../../src/journey/records.ts'
import { timeHandOver } from '../../src/journey/hand-over.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { connect, statusOf } from '../helpers/raw.ts'
import { tracedJourney } from '../helpers/traced.ts'

interface Seen { handedAt: number, endReturned: number, finished: number, inClientKernel?: number | string }

/**
 * The bytes waiting in the client's kernel receive queue, read at once from its socket (non-blocking: EAGAIN
 * when there are none). Client and server share this process, so when end() has just returned the client
 * has read nothing yet: what is there, the server's kernel had taken. (Taking them breaks the client's TLS;
 * it is closed next.)
 */
function inClientKernel (fd: number, size: number): number | string {
  try { return readSync(fd, Buffer.alloc(size)) } catch (err) { return (err as NodeJS.ErrnoException).code ?? String(err) }
}

for (const [secure, fine] of [[false, false], [true, false], [true, true]] as const) {
  test(`${secure ? `HTTPS, ${fine ? 'fine' : 'default'} mode` : 'HTTP'}: a write the kernel took is handed when it returns, Node's 'finish' ${secure ? 'a loop turn' : 'a tick'} later; bytes the kernel would not take end at 'finish'`, async () => {
    const material = await loadTlsMaterial(undefined, undefined)
    const seen = new Map<string, Seen>()
    const respond = (req: IncomingMessage, res: ServerResponse): void => {
      const conn = { handedAt: NaN } as ConnectionRecord
      const socket = res.socket as net.Socket & { [kConnection]?: ConnectionRecord }
      socket[kConnection] = conn
      timeHandOver(socket)
      const entry: Seen = { handedAt: NaN, endReturned: NaN, finished: NaN }
      seen.set(req.url!, entry)
      res.on('finish', () => { entry.handedAt = conn.handedAt; entry.finished = performance.now() })
      const end = (body: Buffer): void => { res.end(body); entry.endReturned = performance.now() }
      if (req.url === '/one' || req.url === '/records') {
        // 2 KiB, or three TLS records (16 KiB each at most)
        end(Buffer.alloc(req.url === '/one' ? 2048 : 48 << 10, 97))
        entry.inClientKernel = inClientKernel(clientFd, 1 << 20)
      }
      else if (req.url === '/two') {
        // Node corks a response's writes until the next tick, then sends them: this one is then in flight, and
        // TLS completes it only on the loop's next check phase, so the last chunk waits in the TLS socket
        // until then, and is written there. (Plain TCP completes it at once: the last chunk goes in end().)
        res.write(Buffer.alloc(1024, 97))
        process.nextTick(end, Buffer.alloc(1024, 98))
      } else end(Buffer.alloc(8 << 20, 99)) // far more than loopback takes from a client that does not read
    }
    const server = secure ? createServer({ key: material.key, cert: material.cert }, respond) : createHttpServer(respond)
    const listener = fine ? cipherTapListener(server as TlsServer) : server
    await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
    const port = (listener.address() as AddressInfo).port
    let clientFd = -1
    for (const url of ['/one', '/records', '/two', '/big']) {
      const client = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect({ port, host: '127.0.0.1' })
      await new Promise(resolve => client.once(secure ? 'secureConnect' : 'connect', resolve))
      const handle = (client as unknown as { _handle?: { fd?: number, _parent?: { fd?: number } } })._handle
      clientFd = (secure ? handle?._parent?.fd : handle?.fd) ?? -1
      client.write(`GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`)
      if (url === '/big') await new Promise(resolve => setTimeout(resolve, 200)) // not reading: the kernel's buffers fill
      client.resume()
      for (const until = Date.now() + 5000; Number.isNaN(seen.get(url)?.finished ?? NaN) && Date.now() < until;) await new Promise(resolve => setTimeout(resolve, 5))
      client.destroy()
    }
    listener.close()
    for (const [url, size] of [['/one', 2048], ['/records', 48 << 10]] as const) {
      const s = seen.get(url)!
      assert.ok(s.handedAt <= s.endReturned && s.handedAt < s.finished, `${url}, one end(): handed inside end(), before 'finish': ${JSON.stringify(s)}`)
      // What "handed" claims, checked at the kernel: the response (over TLS as ciphertext, a little more) had reached the client.
      assert.ok(typeof s.inClientKernel === 'number' && s.inClientKernel >= size, `${url}: the client's kernel had the response when end() returned: ${JSON.stringify(s)}`)
    }
    const two = seen.get('/two')!
    if (secure) assert.ok(two.handedAt > two.endReturned && two.handedAt < two.finished, `a last chunk behind one in flight: handed when it was written, after end() and before 'finish': ${JSON.stringify(two)}`)
    else assert.ok(two.handedAt <= two.endReturned && two.handedAt < two.finished, `a last chunk after one: handed inside end(), before 'finish': ${JSON.stringify(two)}`)
    const big = seen.get('/big')!
    assert.ok(Number.isNaN(big.handedAt) && big.finished > big.endReturned + 150, `8 MiB to a client not reading: 'finish' once it read: ${JSON.stringify(big)}`)
  })
}

// Where a response's stage ends on the journey's own plugin, over HTTP and HTTPS: where its last write
// returned with every byte in the kernel, whatever runs before Node's 'finish' (a tick later on plain TCP;
// over TLS a loop turn later). Here a tick queued just before the response is written burns 25 ms, so
// 'finish' comes at least that late. Three responses: one written by Fastify (write ends); an answer Node
// gives before any hook (its 400 for a request without Host), written inside the parser's callback before
// the journey makes its record (write, which begins after it, stays empty); and a reply the handler writes
// itself (reply.hijack(), reply.raw), whose handler stage runs to the response's end.
const burn = (ms: number): void => { for (const until = performance.now() + ms; performance.now() < until;); }
const cases = [
  { name: 'a response Fastify wrote ends its write', request: 'GET /tick HTTP/1.1\r\nHost: x\r\n\r\n', status: 200, from: 'writeStartAt' },
  { name: 'an answer given before any hook has an empty write', request: 'GET / HTTP/1.1\r\n\r\n', status: 400, from: 'writeStartAt' },
  { name: 'a reply the handler wrote itself ends its handler stage', request: 'GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n', status: 200, from: 'handlerStartAt' }
] as const
for (const [secure, precision] of [[false, 'default'], [true, 'default'], [true, 'fine']] as const) {
  test(`${secure ? `HTTPS, ${precision} mode` : 'HTTP'}: ${cases.map(c => c.name).join('; ')}: where the bytes were in the kernel, not at Node's 'finish'`, async (ctx) => {
    const material = await loadTlsMaterial(undefined, undefined)
    const journey = createJourney({ registry: new Registry(), precision })
    let port = 0
    let listener: Server | undefined
    const app = Fastify({
      serverFactory: (handler) => {
        const server = journey.observeServer(secure ? createServer({ key: material.key, cert: material.cert }, handler) : createHttpServer(handler), 'public')
        listener = journey.listenerFor(server)
        void new Promise<void>(resolve => listener!.listen(0, '127.0.0.1', resolve)).then(() => { port = (listener!.address() as AddressInfo).port })
        return server
      }
    })
    app.addHook('onClose', async () => { await new Promise(resolve => listener!.close(resolve)) })
    await app.register(journey.plugin)
    // Added after the journey's: in write, just before Fastify writes the response (synchronously after it).
    app.addHook('onSend', (request, _reply, payload, done) => { if (request.url === '/tick') process.nextTick(burn, 25); done(null, payload) })
    app.get('/tick', async () => 'ok')
    app.get('/hijack', (_request, reply) => {
      reply.hijack()
      process.nextTick(burn, 25)
      reply.raw.writeHead(200, { 'content-length': 2 }).end('ok')
    })
    await app.ready()
    while (port === 0) await new Promise(resolve => setTimeout(resolve, 5))
    const records: RequestRecord[] = []
    const onRecord = (message: unknown): void => { records.push(message as RequestRecord) }
    // Node's own 400 is written before any hook: its tick is queued as Node makes the response.
    const onCreated = (message: unknown): void => { if ((message as { request: IncomingMessage }).request.headers.host === undefined) process.nextTick(burn, 25) }
    let finished: number
    const onFinish = (): void => { finished = performance.now() }
    channels.request.subscribe(onRecord)
    diagnostics.subscribe('http.server.response.created', onCreated)
    diagnostics.subscribe('http.server.response.finish', onFinish)
    try {
      for (const c of cases) {
        // Each case's own: a 'finish' that never came reads NaN, and fails, rather than the case before's.
        records.length = 0
        finished = NaN
        const client = await connect(port, secure)
        await client.write(c.request)
        await client.read(text => statusOf(text) === c.status && text.endsWith(c.status === 200 ? 'ok' : '}'))
        client.close()
        for (const until = Date.now() + 2000; records.length === 0 && Date.now() < until;) await new Promise(resolve => setTimeout(resolve, 5))
        const rec = records[0]
        assert.ok(rec !== undefined && rec.status === c.status, `${c.name}: its record (${records.length})`)
        assert.equal(rec.beforeHooks, c.status === 400)
        const lateBy = finished - rec[c.from]
        assert.ok(lateBy >= 25, `${c.name}: Node's 'finish' came ${lateBy.toFixed(3)} ms after ${c.from}, behind the 25 ms tick`)
        // Well short of the tick: a first write runs cold (code V8 has not compiled yet), 2 ms here at times.
        const stage = rec.finishAt - rec[c.from]
        assert.ok(stage >= 0 && stage < 10, `${c.name}: ${stage.toFixed(3)} ms from ${c.from}; Node's 'finish' ${lateBy.toFixed(3)} ms`)
        ctx.diagnostic(`${c.name}: ${stage.toFixed(3)} ms from ${c.from}, Node's 'finish' ${lateBy.toFixed(3)} ms`)
      }
    } finally {
      channels.request.unsubscribe(onRecord)
      diagnostics.unsubscribe('http.server.response.created', onCreated)
      diagnostics.unsubscribe('http.server.response.finish', onFinish)
      await app.close()
      journey.close()
    }
  })
}

test('a reply with trailers: Fastify sends the body, waits for the trailer functions, then ends — their time is in write, after the client had the body', async () => {
  const t = tracedJourney()
  await t.app.register(t.journey.plugin)
  t.app.get('/digest', async (request, reply) => {
    reply.trailer('x-digest', async () => { await new Promise(resolve => setTimeout(resolve, 60)); return 'abc' })
    return 'the body'
  })
  try {
    const port = await t.listen()
    const asked = performance.now()
    const res = await fetch(`http://127.0.0.1:${port}/digest`)
    const reader = res.body!.getReader()
    const first = await reader.read()
    const bodyAt = performance.now()
    while (!(await reader.read()).done);
    const endAt = performance.now()
    assert.equal(new TextDecoder().decode(first.value), 'the body')
    // The body came at once; the response ended only once the trailer had answered.
    assert.ok(bodyAt - asked < 45 && endAt - bodyAt >= 40, `body at ${(bodyAt - asked).toFixed(1)} ms, end ${(endAt - bodyAt).toFixed(1)} ms later`)
    const ms = (name: string): number => {
      const span = t.spans.getFinishedSpans().find(s => s.name === name)
      assert.ok(span !== undefined, name)
      return (span.endTime[0] - span.startTime[0]) * 1e3 + (span.endTime[1] - span.startTime[1]) / 1e6
    }
    assert.ok(ms('journey.write') >= 59, `write ${ms('journey.write').toFixed(1)} ms holds the trailer's 60`)
    assert.ok(ms('journey.handler') < 30, `handler ${ms('journey.handler').toFixed(1)} ms`)
  } finally {
    await t.close()
  }
})
