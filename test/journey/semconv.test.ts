// The HTTP semantic-convention attributes that say which request a span is: its path (never its query), the
// client's User-Agent and the client (as Fastify's trustProxy sees it) on the request span — on requests
// Fastify took and on those Node answered before any hook — and the TCP peer on the connection span.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney, urlPath } from '../../src/journey/index.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { serverAddressOf } from '../../src/journey/server-address.ts'
import { connect, responses } from '../helpers/raw.ts'
import { roots } from '../helpers/spans.ts'
import { tracedJourney, type TracedJourney } from '../helpers/traced.ts'

test('urlPath: the path of each request-target form, without query or fragment', () => {
  assert.equal(urlPath('/items/42?token=x'), '/items/42')
  assert.equal(urlPath('/items/42#top'), '/items/42')
  assert.equal(urlPath('/a?b#c'), '/a')
  assert.equal(urlPath('/'), '/')
  assert.equal(urlPath('/a%20b/'), '/a%20b/', 'as received: not decoded')
  assert.equal(urlPath('http://example.com/items/7?q=1'), '/items/7', 'absolute form')
  assert.equal(urlPath('http://example.com'), '/')
  assert.equal(urlPath('http://example.com?q=/x'), '/', 'a slash in the query is not the path')
  assert.equal(urlPath('*'), '*', 'OPTIONS *')
  assert.equal(urlPath('example.com:443'), undefined, 'a CONNECT has no path')
  assert.equal(urlPath(''), undefined)
})

test('serverAddressOf: the host and port a request was sent to, from its absolute-form target or its host', () => {
  assert.deepEqual(serverAddressOf('/a', 'example.com:8080', 'http'), { address: 'example.com', port: 8080 })
  assert.deepEqual(serverAddressOf('/a', 'example.com', 'http'), { address: 'example.com', port: 80 }, 'no port: the scheme\'s')
  assert.deepEqual(serverAddressOf('/a', 'example.com', 'https'), { address: 'example.com', port: 443 })
  assert.deepEqual(serverAddressOf('/a', 'example.com:', 'https'), { address: 'example.com', port: 443 }, 'an empty port is the default one')
  assert.deepEqual(serverAddressOf('/a', '[::1]:3000', 'http'), { address: '::1', port: 3000 }, 'IPv6 without its brackets')
  assert.deepEqual(serverAddressOf('/a', '[::1]', 'https'), { address: '::1', port: 443 })
  assert.deepEqual(serverAddressOf('http://proxied.example:81/a?b', 'other.example', 'http'), { address: 'proxied.example', port: 81 }, 'the absolute form names it itself')
  assert.deepEqual(serverAddressOf('http://user:secret@proxied.example/a', undefined, 'http'), { address: 'proxied.example', port: 80 }, 'never the credentials')
  assert.deepEqual(serverAddressOf('http://proxied.example?q=@x', undefined, 'http'), { address: 'proxied.example', port: 80 })
  assert.deepEqual(serverAddressOf('/a', 'example.com:http', 'http'), { address: 'example.com', port: undefined }, 'a port that is no port is left out')
  assert.deepEqual(serverAddressOf('/a', 'example.com:99999', 'http'), { address: 'example.com', port: undefined })
  assert.equal(serverAddressOf('/a', undefined, 'http'), undefined, 'no host: nothing')
  assert.equal(serverAddressOf('/a', '', 'http'), undefined)
  assert.equal(serverAddressOf('/a', '[::1', 'http'), undefined)
  assert.equal(serverAddressOf('/a', '[::1]x', 'http'), undefined)
})

test('a request span names its path, user agent and peer; its connection span its peer; the query is nowhere', async () => {
  const t = tracedJourney()
  try {
    await t.app.register(t.journey.plugin)
    t.app.get('/items/:id', async () => ({ ok: true }))
    const port = await t.listen()
    const c = await connect(port)
    const clientPort = c.socket.localPort
    await c.write('GET /items/42?token=SECRET-TOKEN HTTP/1.1\r\nHost: localhost\r\nUser-Agent: probe/1.0\r\n\r\n')
    assert.match(await c.read(t => t.includes('{"ok":true}')), /^HTTP\/1\.1 200/)
    // No Host header: Node answers 400 before any Fastify hook, and closes the connection.
    await c.write('GET /no-host?token=SECRET-TOKEN HTTP/1.1\r\nUser-Agent: probe/2.0\r\n\r\n')
    assert.match(await c.read(t => t.includes('400')), /HTTP\/1\.1 400/)
    await c.read() // until the server closes
    // An unknown expectation: Node answers 417 before any hook, too.
    const d = await connect(port)
    await d.write('POST /expect HTTP/1.1\r\nHost: example.org:81\r\nExpect: coffee\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    assert.match(await d.read(), /^HTTP\/1\.1 417/)
    await new Promise(resolve => setTimeout(resolve, 50))

    const all = t.spans.getFinishedSpans()
    const [ok] = roots(all, '/items/:id')
    assert.ok(ok !== undefined, all.map(s => s.name).join(', '))
    assert.equal(ok.attributes['url.path'], '/items/42')
    assert.equal(ok.attributes['user_agent.original'], 'probe/1.0')
    assert.equal(ok.attributes['client.address'], '127.0.0.1')
    assert.equal(ok.attributes['network.peer.port'], undefined, 'the peer is the connection span\'s')
    assert.equal(ok.attributes['network.protocol.version'], '1.1')
    assert.equal(ok.attributes['server.address'], 'localhost', 'the host it was sent to')
    assert.equal(ok.attributes['server.port'], 80, 'a Host without a port means the scheme\'s')

    const early = roots(all).find(s => s.attributes['journey.before_hooks'] === true && s.attributes['url.path'] === '/no-host')
    assert.ok(early !== undefined, 'Node\'s 400 has its request span')
    assert.equal(early.attributes['url.path'], '/no-host')
    assert.equal(early.attributes['user_agent.original'], 'probe/2.0')
    assert.equal(early.attributes['client.address'], '127.0.0.1', 'no Fastify request: the TCP peer')
    assert.equal(early.attributes['network.protocol.version'], '1.1')
    assert.equal(early.attributes['server.address'], undefined, 'no Host: no server.address')
    const expect = roots(all).find(s => s.attributes['url.path'] === '/expect')
    assert.equal(expect?.attributes['journey.before_hooks'], true)
    assert.equal(expect?.attributes['server.address'], 'example.org', 'answered before any hook: the Host as sent')
    assert.equal(expect?.attributes['server.port'], 81)

    const conn = all.find(s => s.name === 'journey.connection')
    assert.ok(conn !== undefined, 'the connection span: its requests were kept')
    assert.equal(conn.attributes['network.peer.address'], '127.0.0.1')
    assert.equal(conn.attributes['network.peer.port'], clientPort, 'read at accept, still there after the close')

    assert.ok(!JSON.stringify(all.map(s => s.attributes)).includes('SECRET-TOKEN'), 'no query string in any span')
  } finally {
    await t.close()
  }
})

test('url.path is the path the client sent, not the one an app\'s rewriteUrl routed it by; the route is the rewritten one\'s', async () => {
  const t = tracedJourney({ fastify: { rewriteUrl: req => (req.url ?? '/').replace(/^\/old\//, '/new/') } })
  try {
    await t.app.register(t.journey.plugin)
    t.app.get('/new/:id', async req => ({ url: req.url }))
    const port = await t.listen()
    for (const path of ['/old/7?token=SECRET-TOKEN', '/new/8']) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`)
      assert.equal(res.status, 200)
      await res.text()
    }
    const paths = roots(t.spans.getFinishedSpans(), '/new/:id').map(s => s.attributes['url.path']).sort()
    assert.deepEqual(paths, ['/new/8', '/old/7'])
  } finally {
    await t.close()
  }
})

test('network.protocol.version is the version each request came in, on spans and the duration metric: an HTTP/1.0 request is not 1.1, an HTTP/2.0 request line on an HTTP/1 connection not HTTP/2', async () => {
  const t = tracedJourney()
  try {
    await t.app.register(t.journey.plugin)
    t.app.get('/v', async () => ({ ok: true }))
    const port = await t.listen()
    // llhttp takes HTTP/2.0 and HTTP/0.9 request lines too, and Node answers them in HTTP/1.1 with 1.0's
    // connection rules: 1.0, the framing they got, and never 2 (which would put them in the HTTP/2 panels).
    for (const version of ['1.0', '1.1', '2.0', '0.9']) {
      const c = await connect(port)
      await c.write(`GET /v?${version} HTTP/${version}\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
      assert.match(await c.read(), /^HTTP\/1\.1 200/)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
    const spans = roots(t.spans.getFinishedSpans(), '/v')
    assert.deepEqual(spans.map(s => s.attributes['network.protocol.version']).sort(), ['1.0', '1.0', '1.0', '1.1'])
    const text = await t.registry.metrics()
    for (const [version, n] of [['1\\.0', 3], ['1\\.1', 1]]) {
      assert.match(text, new RegExp(`http_server_request_duration_seconds_count\\{[^}]*http_route="/v",[^}]*network_protocol_version="${version}"\\} ${n}`), 'and the request-duration metric')
    }
    assert.doesNotMatch(text, /network_protocol_version="2"/)
  } finally {
    await t.close()
  }
})

test('client.address and server.address are Fastify\'s request.ip and request.host: forwarded ones only when the app trusts its proxies', async () => {
  const apps: TracedJourney[] = []
  try {
    for (const trustProxy of [true, false]) {
      const t = tracedJourney({ fastify: { trustProxy } })
      apps.push(t)
      await t.app.register(t.journey.plugin)
      t.app.get(`/trusted-${trustProxy}`, async () => ({ ok: true }))
      const c = await connect(await t.listen())
      await c.write(`GET /trusted-${trustProxy} HTTP/1.1\r\nHost: localhost:8080\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Host: api.example.com\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n`)
      assert.match(await c.read(), /^HTTP\/1\.1 200/)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
    const all = apps.flatMap(t => t.spans.getFinishedSpans())
    const [trusted] = roots(all, '/trusted-true')
    assert.equal(trusted?.attributes['client.address'], '203.0.113.7', 'the client behind the proxy the app trusts')
    const conn = all.find(s => s.name === 'journey.connection' && s.attributes['journey.connection.id'] === trusted?.attributes['journey.connection.id'])
    assert.equal(conn?.attributes['network.peer.address'], '127.0.0.1', 'and the proxy itself on its connection span')
    const [untrusted] = roots(all, '/trusted-false')
    assert.equal(untrusted?.attributes['client.address'], '127.0.0.1', 'a header anyone can send counts for nothing')
    assert.equal(trusted?.attributes['server.address'], 'api.example.com', 'the host the client asked the proxy for')
    assert.equal(trusted?.attributes['url.scheme'], 'https', 'with the scheme it asked in (the proxy ended its TLS)')
    assert.equal(trusted?.attributes['server.port'], 443, 'so its default port is HTTPS\'s')
    assert.equal(untrusted?.attributes['url.scheme'], 'http', 'an untrusted X-Forwarded-Proto counts for nothing either')
    assert.equal(untrusted?.attributes['server.address'], 'localhost', 'Host, when the proxy is not trusted')
    assert.equal(untrusted?.attributes['server.port'], 8080)
  } finally {
    for (const t of apps) await t.close()
  }
})

test('a method no route takes is _OTHER on spans and metrics (the original on the span); a routed one is itself', async () => {
  const t = tracedJourney()
  try {
    await t.app.register(t.journey.plugin)
    t.app.addHttpMethod('PROPFIND', { hasBody: true })
    t.app.route({ method: 'PROPFIND', url: '/dav', handler: async () => ({ ok: true }) })
    const c = await connect(await t.listen())
    const requests = ['PROPFIND /dav', 'MKCOL /nowhere', 'PURGE /nowhere']
    for (const line of requests) {
      await c.write(`${line} HTTP/1.1\r\nHost: localhost\r\n\r\n`)
      await c.read(responses(1)) // one at a time
    }
    c.close()
    await new Promise(resolve => setTimeout(resolve, 50))
    const all = roots(t.spans.getFinishedSpans())
    const dav = all.find(s => s.attributes['http.route'] === '/dav')
    assert.equal(dav?.name, 'PROPFIND /dav')
    assert.equal(dav?.attributes['http.request.method'], 'PROPFIND')
    assert.equal(dav?.attributes['http.request.method_original'], undefined)
    const other = all.filter(s => s.attributes['http.request.method'] === '_OTHER')
    assert.deepEqual(other.map(s => s.name), ['HTTP', 'HTTP'], 'MKCOL and PURGE, which no route takes')
    assert.deepEqual(other.map(s => s.attributes['http.request.method_original']), ['MKCOL', 'PURGE'])
    const text = await t.registry.metrics()
    const methods = new Set([...text.matchAll(/http_request_method="([^"]+)"/g)].map(m => m[1]))
    assert.deepEqual([...methods].sort(), ['PROPFIND', '_OTHER'])
    assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="_OTHER",http_route="\(unmatched\)",http_response_status_code="404",url_scheme="http",network_protocol_version="1\.1"\} 2/)
    assert.ok(!/method="(MKCOL|PURGE)"/.test(text), 'nor in the journey\'s own histograms')
  } finally {
    await t.close()
  }
})


test('a journey without tracing does not read what only spans carry: the peer and, on TLS, cipher, ALPN and SNI', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const tls = await loadTlsMaterial(undefined, undefined)
  const app = Fastify({ serverFactory: journey.serverFactory({ https: { key: tls.key, cert: tls.cert } }) })
  try {
    await app.register(journey.plugin)
    app.get('/seen', async (request) => {
      const conn = request.journey?.conn
      return { peer: conn?.peerAddress ?? null, cipher: conn?.tlsCipher ?? null, protocol: conn?.tlsProtocol ?? null }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const c = await connect((app.server.address() as { port: number }).port, true)
    await c.write('GET /seen HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
    const body = JSON.parse((await c.read()).split('\r\n\r\n')[1]!) as Record<string, string | null>
    assert.deepEqual({ peer: body.peer, cipher: body.cipher }, { peer: null, cipher: null })
    assert.match(String(body.protocol), /^TLSv1\.[23]$/, 'the protocol still labels the handshake histogram')
  } finally {
    await app.close()
    await journey.close()
  }
})
