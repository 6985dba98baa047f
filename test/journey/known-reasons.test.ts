// Counters of errors start at 0 for every reason a server can give (knownReasons), so the first error of a
// kind is an increase Prometheus can see. The lists must hold every reason the functions that name errors
// return, or a reason would again be born at its first occurrence. (`unknown_protocol` is named in place, not
// by a function: test/journey/http2.test.ts makes it happen.)
import assert from 'node:assert/strict'
import { createServer as createHttpServer } from 'node:http'
import { createSecureServer, createServer as createH2cServer } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { promisify } from 'node:util'
import { after, test } from 'node:test'
import { Registry } from 'prom-client'
import { generate } from 'selfsigned'
import { createJourney } from '../../src/journey/index.ts'
import { CERTIFICATE_REJECTED, clientErrorReason, knownReasons, tlsFailureReason } from '../../src/journey/observe-connection.ts'
import { sessionErrorReason } from '../../src/journey/observe-http2.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { connect } from '../helpers/raw.ts'
import { browserSkip, launchChromium } from '../helpers/browser.ts'

const run = promisify(execFile)
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
  // OpenSSL's own handshake codes are open-ended: named as they come, in label characters; the common few listed.
  assert.equal(tlsFailureReason(error('ERR_SSL_WRONG_VERSION_NUMBER')), 'wrong_version_number')
  assert.ok(!https.tlsFailures.includes('wrong_version_number'))
  assert.equal(tlsFailureReason(error('ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_EXPIRED')), 'ssl_tls_alert_certificate_expired')
  for (const reason of [...CERTIFICATE_REJECTED, 'unsupported_protocol', 'no_shared_cipher']) assert.ok(https.tlsFailures.includes(reason) && h2.tlsFailures.includes(reason), reason)
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
  assert.deepEqual([...(await series('journey_tls_handshake_failures_total', 'https')).keys()].sort(), [...knownReasons(https).tlsFailures].sort())
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

// The OpenSSL reasons listed are names Node 24 really gives: if its OpenSSL renamed one, the zero would be
// exported for a name no failure uses, and the real failures born at 1 again. Each made by a real client.
test('each OpenSSL reason knownReasons lists is what a real client gives: certificates rejected, protocols and ciphers refused', async (t) => {
  const { cert, key } = await loadTlsMaterial(undefined, undefined)
  const day = 86_400_000
  const certificate = async (from: number, to: number): Promise<{ cert: string, key: string }> => {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048, notBeforeDate: new Date(Date.now() + from * day), notAfterDate: new Date(Date.now() + to * day),
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }]
    })
    return { cert: pems.cert, key: pems.private }
  }
  const expired = await certificate(-30, -1)
  const future = await certificate(1, 30)
  const dir = mkdtempSync(join(tmpdir(), 'journey-certs-'))
  closing.push(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'expired.pem'), expired.cert)
  writeFileSync(join(dir, 'future.pem'), future.cert)

  const registry = new Registry()
  const journey = createJourney({ registry })
  const ports: Record<string, number> = {}
  for (const [name, pems] of [['dev', { cert, key }], ['expired', expired], ['future', future]] as const) {
    const server = journey.observeServer(createHttpsServer(pems, (_req, res) => res.end('ok')), name)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    closing.push(() => new Promise(resolve => server.close(resolve)))
    ports[name] = (server.address() as AddressInfo).port
  }
  closing.push(() => journey.close())
  const failures = async (listener: string): Promise<Record<string, number>> => Object.fromEntries([...(await registry.metrics()).matchAll(
    new RegExp(`^journey_tls_handshake_failures_total\\{listener="${listener}",reason="([a-z0-9_]+)"\\} (\\d+)$`, 'gm'))].map(m => [m[1]!, Number(m[2])]))
  const curl = (port: number, ...args: string[]): Promise<unknown> =>
    run('curl', ['-s', '-o', '/dev/null', '--resolve', `localhost:${port}:127.0.0.1`, ...args, `https://localhost:${port}/`]).catch((err: unknown) => err)
  const tlsClient = (options: ConnectionOptions): Promise<void> => new Promise(resolve => {
    const socket = tlsConnect({ host: '127.0.0.1', port: ports.dev, rejectUnauthorized: false, ...options })
    socket.on('error', () => {}).on('close', () => resolve()).resume()
  })

  // curl (OpenSSL) does not trust the development certificate's issuer, and says so with an alert.
  await curl(ports.dev!)
  // Given the certificate to trust, it still refuses it expired, and before it is valid.
  await curl(ports.expired!, '--cacert', join(dir, 'expired.pem'))
  await curl(ports.future!, '--cacert', join(dir, 'future.pem'))
  // A client that only speaks TLS 1.1, and one with no cipher the server offers.
  await tlsClient({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' })
  await tlsClient({ maxVersion: 'TLSv1.2', ciphers: 'CAMELLIA128-SHA:@SECLEVEL=0' })
  // A client's exit can reach this process before the server has read its alert: wait for the counts (2 s at most).
  const counted = async (): Promise<number> => { const d = await failures('dev'); return (d.tlsv1_alert_unknown_ca ?? 0) + (d.unsupported_protocol ?? 0) + (d.no_shared_cipher ?? 0) + ((await failures('expired')).ssl_tls_alert_certificate_expired ?? 0) + ((await failures('future')).ssl_tls_alert_bad_certificate ?? 0) }
  for (let i = 0; i < 40 && await counted() < 5; i++) await new Promise(resolve => setTimeout(resolve, 50))
  const dev = await failures('dev')
  assert.equal(dev.tlsv1_alert_unknown_ca, 1, JSON.stringify(dev))
  assert.equal(dev.unsupported_protocol, 1, JSON.stringify(dev))
  assert.equal(dev.no_shared_cipher, 1, JSON.stringify(dev))
  assert.equal((await failures('expired')).ssl_tls_alert_certificate_expired, 1, JSON.stringify(await failures('expired')))
  assert.equal((await failures('future')).ssl_tls_alert_bad_certificate, 1, JSON.stringify(await failures('future')))
  // Every series seen is a listed one: nothing above was born at 1.
  for (const listener of ['dev', 'expired', 'future']) {
    assert.deepEqual(Object.keys(await failures(listener)).sort(), [...knownReasons(createHttpsServer()).tlsFailures].sort(), listener)
  }

  // Chromium (BoringSSL) names its distrust differently.
  if (browserSkip() !== false) { t.diagnostic('no Chromium: its reason not checked'); return }
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    await page.goto(`https://localhost:${ports.dev}/`).catch(() => {})
  } finally {
    await browser.close()
  }
  for (let i = 0; i < 40 && (await failures('dev')).ssl_tls_alert_certificate_unknown === 0; i++) await new Promise(resolve => setTimeout(resolve, 50))
  assert.ok((await failures('dev')).ssl_tls_alert_certificate_unknown! >= 1, JSON.stringify(await failures('dev')))
})
