// Hostile TLS clients: every failure counted by reason, visible as a failed journey.tls span.
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ TLS_HANDSHAKE_TIMEOUT_MS: '300' }) })
after(async () => { await t.close() })

async function failures (reason: string): Promise<number> {
  const text = await (await request(`${t.admin}/metrics`)).body.text()
  return Number(new RegExp(`journey_tls_handshake_failures_total\\{listener="https",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0)
}

function closed (socket: net.Socket): Promise<void> {
  // Reading (resume) lets the socket see the server's end and close.
  return new Promise(resolve => { socket.on('close', () => resolve()); socket.on('error', () => {}); socket.resume() })
}

async function failedTlsSpan (reason: string): Promise<void> {
  await t.spansWhere(s => s.some(x => x.name === 'journey.tls' && x.attributes['journey.tls.failure_reason'] === reason))
}

test('garbage instead of a ClientHello', async () => {
  const s = net.connect(t.server.ports.https, '127.0.0.1', () => s.write(Buffer.from('\x16\x03\x01\x00\x05garbage-garbage-garbage')))
  await closed(s)
  await t.spansWhere(s => s.some(x => x.name === 'journey.tls' && x.status.code === 2))
  const text = await (await request(`${t.admin}/metrics`)).body.text()
  assert.match(text, /journey_tls_handshake_failures_total\{listener="https",reason="(?!plain_http)[a-z_]+"\} [1-9]/)
})

test('a client that connects and never starts the handshake is cut off after TLS_HANDSHAKE_TIMEOUT_MS', async () => {
  const before = await failures('timeout')
  const started = performance.now()
  const s = net.connect(t.server.ports.https, '127.0.0.1')
  await closed(s)
  const waited = performance.now() - started
  assert.ok(waited >= 250 && waited < 5000, `closed after ${waited} ms`)
  await failedTlsSpan('timeout')
  assert.equal(await failures('timeout'), before + 1)
})

test('a client that only speaks TLS 1.0', async () => {
  // SECLEVEL=0 lets this OpenSSL still offer TLS 1.0, as an old client would; the server requires 1.2+.
  const s = tls.connect({ port: t.server.ports.https, host: '127.0.0.1', rejectUnauthorized: false, minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' })
  await closed(s)
  await failedTlsSpan('unsupported_protocol')
  assert.ok(await failures('unsupported_protocol') >= 1)
})

test('a TLS 1.2 client renegotiating past Node\'s limit is cut off, counted as tls_renegotiation', async () => {
  const errors = async (): Promise<number> => Number(/journey_connection_errors_total\{listener="https",reason="tls_renegotiation"\} (\d+)/.exec(await (await request(`${t.admin}/metrics`)).body.text())?.[1] ?? 0)
  const before = await errors()
  const s = tls.connect({ port: t.server.ports.https, host: '127.0.0.1', rejectUnauthorized: false, maxVersion: 'TLSv1.2' })
  s.on('error', () => {})
  const gone = closed(s)
  await new Promise(resolve => s.once('secureConnect', resolve))
  // Node allows tls.CLIENT_RENEG_LIMIT (3) renegotiations in tls.CLIENT_RENEG_WINDOW (600 s).
  // The one past the limit gets no callback: the server closes the connection instead.
  for (let i = 0; i <= tls.CLIENT_RENEG_LIMIT && !s.destroyed; i++) {
    await Promise.race([gone, new Promise(resolve => { if (!s.renegotiate({ rejectUnauthorized: false }, resolve)) resolve(undefined) })])
  }
  await gone
  for (let i = 0; i < 50 && await errors() === before; i++) await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(await errors(), before + 1)
})

test('a corrupted record after a TLS 1.2 handshake (a bad MAC) closes the connection, counted as tls_error', async () => {
  const errors = async (): Promise<number> => Number(/journey_connection_errors_total\{listener="https",reason="tls_error"\} (\d+)/.exec(await (await request(`${t.admin}/metrics`)).body.text())?.[1] ?? 0)
  const before = await errors()
  const raw = net.connect(t.server.ports.https, '127.0.0.1')
  await new Promise(resolve => raw.once('connect', resolve))
  const s = tls.connect({ socket: raw, rejectUnauthorized: false, maxVersion: 'TLSv1.2' })
  s.on('error', () => {})
  await new Promise(resolve => s.once('secureConnect', resolve))
  await new Promise(resolve => setTimeout(resolve, 20)) // the server is secure too
  // An application-data record of 32 bytes the server cannot authenticate, written under the TLS layer.
  raw.write(Buffer.concat([Buffer.from('1703030020', 'hex'), Buffer.alloc(32, 7)]))
  await new Promise(resolve => raw.on('close', resolve))
  for (let i = 0; i < 50 && await errors() === before; i++) await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(await errors(), before + 1)
})

test('after all that, HTTPS still serves', async () => {
  const r = await request(`${t.https}/`, { dispatcher: t.insecure })
  assert.equal(r.statusCode, 200)
  await r.body.text()
})
