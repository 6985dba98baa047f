// Counters of errors start at 0 for every reason a server can give (knownReasons), so the first error of a
// kind is an increase Prometheus can see. The lists must hold every reason the functions that name errors
// return, or a reason would again be born at its first occurrence. (`unknown_protocol` is named in place, not
// by a function: test/journey/http2.test.ts makes it happen.)
import assert from 'node:assert/strict'
import { createServer as createHttpServer } from 'node:http'
import { createSecureServer, createServer as createH2cServer } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'
import { clientErrorReason, knownReasons, sessionErrorReason, tlsFailureReason } from '../../src/journey/observe-connection.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { connect } from '../helpers/raw.ts'

const closing: Array<() => unknown> = []
after(async () => { for (const close of closing.reverse()) await close() })

const error = (code: string | undefined): NodeJS.ErrnoException => Object.assign(new Error('x'), code === undefined ? {} : { code })
// Every branch of the three functions, and codes they do not know.
const CLIENT_CODES = ['HPE_HEADER_OVERFLOW', 'HPE_PAUSED_H2_UPGRADE', 'ERR_HTTP_REQUEST_TIMEOUT', 'ECONNRESET', 'EPIPE', 'HPE_INVALID_EOF_STATE',
  'ERR_TLS_SESSION_ATTACK', 'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC', 'HPE_INVALID_METHOD', 'HPE_INVALID_CONSTANT', 'EPROTO', undefined]
const SESSION_CODES = ['ECONNRESET', 'EPIPE', 'ERR_HTTP2_ERROR', 'ERR_HTTP2_SESSION_ERROR', undefined]
const TLS_CODES = ['ERR_SSL_HTTP_REQUEST', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'ECONNRESET', 'EPIPE', 'EPROTO', undefined]

test('knownReasons lists every reason the error functions give, for the servers that can give it', async () => {
  const { cert, key } = await loadTlsMaterial(undefined, undefined)
  const http1 = knownReasons(createHttpServer())
  const https = knownReasons(createHttpsServer({ cert, key }))
  const h2 = knownReasons(createSecureServer({ cert, key, allowHTTP1: true }))
  const h2c = knownReasons(createH2cServer())
  const tlsOnly = new Set(['tls_renegotiation', 'tls_error'])
  for (const code of CLIENT_CODES) {
    const reason = clientErrorReason(error(code))
    assert.ok(https.connectionErrors.includes(reason), `${String(code)} → ${reason}: listed for an HTTPS server`)
    assert.ok(h2.connectionErrors.includes(reason), `${reason}: listed for a TLS HTTP/2 server (HTTP/1 clients with allowHTTP1)`)
    if (!tlsOnly.has(reason)) assert.ok(http1.connectionErrors.includes(reason), `${reason}: listed for an HTTP server`)
  }
  for (const code of SESSION_CODES) {
    const reason = sessionErrorReason(error(code))
    assert.ok(h2.connectionErrors.includes(reason) && h2c.connectionErrors.includes(reason), `${String(code)} → ${reason}: listed for HTTP/2 servers`)
  }
  for (const code of TLS_CODES) {
    const reason = tlsFailureReason(error(code))
    assert.ok(https.tlsFailures.includes(reason) && h2.tlsFailures.includes(reason), `${String(code)} → ${reason}: listed for TLS servers`)
  }
  // Named where Node gives an HTTP/2 server's TLS connection neither a session nor a parser (observe-connection.ts).
  assert.ok(h2.connectionErrors.includes('unknown_protocol') && !https.connectionErrors.includes('unknown_protocol') && !h2c.connectionErrors.includes('unknown_protocol'))
  // OpenSSL's own handshake codes are open-ended: named as they come, not listed.
  assert.equal(tlsFailureReason(error('ERR_SSL_NO_SHARED_CIPHER')), 'no_shared_cipher')
  assert.ok(!https.tlsFailures.includes('no_shared_cipher'))
  // Nothing a server cannot give: no TLS reasons without TLS, no HTTP/2 session errors without HTTP/2.
  assert.deepEqual(http1.tlsFailures, [])
  assert.ok(!http1.connectionErrors.some(r => tlsOnly.has(r)))
  assert.ok(!http1.connectionErrors.includes('http2_protocol') && !https.connectionErrors.includes('http2_protocol'))
  // h2c parses no HTTP/1: only HTTP/2 session errors.
  assert.deepEqual([...h2c.connectionErrors].sort(), ['client_reset', 'http2_protocol'])
})

test('an observed server exports its reasons at 0 before any connection, and a first error moves its series from 0 to 1', async () => {
  const { cert, key } = await loadTlsMaterial(undefined, undefined)
  const registry = new Registry()
  const journey = createJourney({ registry })
  const http = journey.observeServer(createHttpServer((_req, res) => res.end('ok')), 'http')
  const https = journey.observeServer(createHttpsServer({ cert, key }, (_req, res) => res.end('ok')), 'https')
  for (const s of [http, https]) await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  closing.push(() => journey.close(), () => new Promise(resolve => http.close(resolve)), () => new Promise(resolve => https.close(resolve)))
  const series = async (name: string, listener: string): Promise<Map<string, number>> => new Map([...(await registry.metrics()).matchAll(
    new RegExp(`^${name}\\{listener="${listener}",reason="([a-z0-9_]+)"\\} (\\d+)$`, 'gm'))].map(m => [m[1]!, Number(m[2])]))

  const httpErrors = await series('journey_connection_errors_total', 'http')
  assert.deepEqual([...httpErrors.keys()].sort(), [...knownReasons(http).connectionErrors].sort())
  assert.ok([...httpErrors.values()].every(v => v === 0))
  assert.equal((await series('journey_connection_errors_total', 'https')).size, knownReasons(https).connectionErrors.length)
  assert.deepEqual([...(await series('journey_tls_handshake_failures_total', 'https')).keys()].sort(), ['client_reset', 'other', 'plain_http', 'timeout'])
  assert.equal((await series('journey_tls_handshake_failures_total', 'http')).size, 0)

  // One malformed request on HTTP, one plain-HTTP client on HTTPS.
  const bad = await connect((http.address() as AddressInfo).port)
  await bad.write('NOT A REQUEST\r\n\r\n')
  assert.match(await bad.read(), /^HTTP\/1\.1 400/)
  const plain = await connect((https.address() as AddressInfo).port)
  await plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await plain.read()
  assert.equal((await series('journey_connection_errors_total', 'http')).get('bad_request'), 1)
  assert.equal((await series('journey_tls_handshake_failures_total', 'https')).get('plain_http'), 1)
})
