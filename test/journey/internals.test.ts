// The undocumented Node (and Fastify) internals the journey relies on. When a Node upgrade removes one, this file
// fails loudly and names it, instead of read/parse/tls quietly disappearing from every waterfall.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer } from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { test } from 'node:test'
import type { AddressInfo } from 'node:net'
import { checkParserInternals } from '../../src/journey/index.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'

test(`_http_common.HTTPParser kOnMessageBegin/kOnHeadersComplete exist on Node ${process.version}`, () => {
  assert.equal(checkParserInternals(), undefined)
  const { HTTPParser } = createRequire(import.meta.url)('_http_common')
  assert.equal(typeof HTTPParser.kOnMessageBegin, 'number')
  assert.equal(typeof HTTPParser.kOnHeadersComplete, 'number')
})

test('the parser holds the request it just built as .incoming when kOnHeadersComplete returns (requests answered before any hook)', async () => {
  const { createServer: createHttpServer } = await import('node:http')
  const { connect } = await import('node:net')
  const { HTTPParser } = createRequire(import.meta.url)('_http_common')
  let seen: { incoming: unknown, req: unknown } | undefined
  const server = createHttpServer((req, res) => { seen = { incoming: undefined, req }; res.end('ok') })
  server.on('connection', (s: import('node:net').Socket & { parser?: Record<number, unknown> & { incoming?: unknown } }) => {
    const parser = s.parser!
    const original = parser[HTTPParser.kOnHeadersComplete] as (...a: unknown[]) => unknown
    parser[HTTPParser.kOnHeadersComplete] = function (this: typeof parser, ...args: unknown[]) {
      const result = original.apply(this, args)
      if (seen !== undefined) seen.incoming = this.incoming
      return result
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  await new Promise(resolve => client.on('close', resolve).resume())
  server.close()
  assert.ok(seen !== undefined && seen.req !== undefined)
  assert.equal(seen.incoming, seen.req, 'parser.incoming is the IncomingMessage the server emitted')
})

test('the parser hands each piece of a chunked body to kOnBody as one Buffer, with the request as .incoming (chunked body sizes)', async () => {
  const { createServer: createHttpServer } = await import('node:http')
  const { connect } = await import('node:net')
  const { HTTPParser } = createRequire(import.meta.url)('_http_common')
  assert.equal(typeof HTTPParser.kOnBody, 'number')
  const pieces: Array<{ bytes: number, incoming: unknown }> = []
  let request: unknown
  const server = createHttpServer((req, res) => { request = req; req.resume().on('end', () => res.end('ok')) })
  server.on('connection', (s: import('node:net').Socket & { parser?: Record<number, unknown> & { incoming?: unknown } }) => {
    const parser = s.parser!
    const original = parser[HTTPParser.kOnBody] as (this: unknown, b: Buffer) => unknown
    assert.equal(typeof original, 'function')
    parser[HTTPParser.kOnBody] = function (this: typeof parser, b: Buffer) {
      pieces.push({ bytes: Buffer.isBuffer(b) ? b.length : -1, incoming: this.incoming })
      return original.call(this, b)
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  client.write('POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n')
  await new Promise(resolve => client.on('close', resolve).resume())
  server.close()
  assert.equal(pieces.reduce((n, p) => n + p.bytes, 0), 7, `the body's bytes without the framing: ${JSON.stringify(pieces.map(p => p.bytes))}`)
  assert.ok(pieces.every(p => p.incoming === request), 'parser.incoming is the request the body belongs to')
})

test('an HTTP/2 stream\'s DATA reaches JS through its push(), and endAfterHeaders says whether a body follows (HTTP/2 body sizes)', async () => {
  const http2 = await import('node:http2')
  const seen: Array<{ endAfterHeaders: unknown, pushed: number, read: number }> = []
  const server = http2.createServer((req, res) => {
    const stream = req.stream as unknown as { endAfterHeaders: unknown, push: (c: unknown, e?: BufferEncoding) => boolean }
    const entry = { endAfterHeaders: stream.endAfterHeaders, pushed: 0, read: 0 }
    seen.push(entry)
    const push = stream.push
    stream.push = function (chunk, encoding) {
      if (chunk != null) entry.pushed += (chunk as Buffer).length
      return push.call(this, chunk, encoding)
    }
    req.on('data', (d: Buffer) => { entry.read += d.length })
    req.on('end', () => res.end())
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  const send = (body: Buffer | undefined): Promise<void> => new Promise(resolve => {
    const s = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': '/' }, { endStream: body === undefined })
    s.on('end', () => resolve()).resume()
    if (body !== undefined) s.end(body)
  })
  await send(Buffer.alloc(70_000))
  await send(undefined)
  session.close()
  server.close()
  assert.deepEqual(seen, [{ endAfterHeaders: false, pushed: 70_000, read: 70_000 }, { endAfterHeaders: true, pushed: 0, read: 0 }])
})

test('an HTTPS server\'s TLSSocket has its raw socket as _parent and its HTTP parser attached at secureConnection', async () => {
  const material = await loadTlsMaterial(undefined, undefined)
  const server = createServer({ key: material.key, cert: material.cert }, (_req, res) => res.end('ok'))
  let raw: unknown
  server.prependListener('connection', (s) => { raw = s })
  const seen = new Promise<{ parent: unknown, parser: unknown, headersComplete: unknown }>(resolve => {
    server.on('secureConnection', (s: tls.TLSSocket & { _parent?: unknown, parser?: Record<number, unknown> }) => {
      const { HTTPParser } = createRequire(import.meta.url)('_http_common')
      resolve({ parent: s._parent, parser: s.parser, headersComplete: s.parser?.[HTTPParser.kOnHeadersComplete] })
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false })
  const got = await seen
  client.destroy()
  server.close()
  assert.equal(got.parent, raw, 'TLSSocket._parent is the accepted TCP socket')
  assert.ok(got.parser !== undefined && got.parser !== null, 'parser attached by the https connection listener')
  assert.equal(typeof got.headersComplete, 'function')
})

test('fine mode: a TLSSocket over a CipherTap reaches the tap through _handle._parentWrap.stream', async () => {
  const { cipherTapListener, CipherTap } = await import('../../src/journey/cipher-tap.ts')
  const material = await loadTlsMaterial(undefined, undefined)
  const server = createServer({ key: material.key, cert: material.cert }, (_req, res) => res.end('ok'))
  const seen = new Promise<unknown>(resolve => {
    server.on('secureConnection', (s: tls.TLSSocket & { _handle?: { _parentWrap?: { stream?: unknown } } }) => resolve(s._handle?._parentWrap?.stream))
  })
  const listener = cipherTapListener(server)
  await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
  const client = tls.connect({ port: (listener.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false })
  client.on('secureConnect', () => client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  const stream = await seen
  client.destroy()
  listener.close()
  assert.ok(stream instanceof CipherTap)
})

for (const secure of [false, true]) {
  test(`${secure ? 'HTTPS' : 'HTTP'}: a socket hands every write to its own _writeGeneric, and ${secure ? 'the TCP handle under TLS (_handle._parent)' : 'its TCP handle'} counts in writeQueueSize what the kernel has not taken`, async () => {
    const material = await loadTlsMaterial(undefined, undefined)
    const big = Buffer.alloc(8 << 20, 97) // far more than loopback's buffers hold for a client that is not reading
    type Timed = net.Socket & { _writeGeneric: (...a: unknown[]) => unknown, _handle?: { writeQueueSize?: unknown, _parent?: { writeQueueSize?: unknown } } }
    const seen: Array<{ url: string | undefined, queued: unknown }> = []
    const respond = (req: IncomingMessage, res: ServerResponse): void => {
      const socket = res.socket as Timed
      const original = socket._writeGeneric
      assert.equal(typeof original, 'function')
      socket._writeGeneric = function (this: Timed, ...args: unknown[]) {
        const result = original.apply(this, args)
        seen.push({ url: req.url, queued: secure ? this._handle?._parent?.writeQueueSize : this._handle?.writeQueueSize })
        return result
      }
      res.end(req.url === '/big' ? big : 'ok')
    }
    const server = secure ? createServer({ key: material.key, cert: material.cert }, respond) : createHttpServer(respond)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    for (const url of ['/small', '/big']) {
      const client = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect({ port, host: '127.0.0.1' })
      await new Promise(resolve => client.once(secure ? 'secureConnect' : 'connect', resolve))
      client.write(`GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`)
      for (const until = Date.now() + 3000; !seen.some(s => s.url === url) && Date.now() < until;) await new Promise(resolve => setTimeout(resolve, 10))
      client.destroy()
    }
    server.close()
    assert.deepEqual(seen.filter(s => s.url === '/small'), [{ url: '/small', queued: 0 }], 'a small answer: one write, all of it in the kernel when it returns')
    const large = seen.filter(s => s.url === '/big')
    assert.ok(large.length >= 1 && typeof large[0]!.queued === 'number' && large[0]!.queued > 0, `a large one to a client not reading: ${JSON.stringify(large)}`)
  })
}

test('a listening net.Server exposes its socket as _handle.fd (the kernel metrics find its /proc row by it)', { skip: process.platform !== 'linux' && 'needs Linux /proc' }, async () => {
  const { createServer: createNetServer } = await import('node:net')
  const { readlinkSync } = await import('node:fs')
  const server = createNetServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd
  const link = typeof fd === 'number' ? readlinkSync(`/proc/self/fd/${fd}`) : ''
  server.close()
  assert.ok(typeof fd === 'number' && fd >= 0, `_handle.fd is ${fd}`)
  assert.match(link, /^socket:\[\d+\]$/)
})

test('Fastify keeps the servers it builds for localhost\'s other addresses under Symbol(fastify.serverBindings)', async () => {
  const { default: Fastify } = await import('fastify')
  const { secondaryServers } = await import('../../src/journey/app-servers.ts')
  const app = Fastify()
  assert.deepEqual(secondaryServers(app), [], 'an array, empty before listen()')
})
