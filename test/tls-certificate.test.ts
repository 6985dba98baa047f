// journey_tls_certificate_expiry_timestamp_seconds: the notAfter of the certificate the HTTPS listener
// serves, the same one a client is handed in its handshake.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { connect, type PeerCertificate } from 'node:tls'
import selfsigned from 'selfsigned'
import { parseMetrics, sample } from '../experiments/lib/metrics.ts'
import { startTestServer, type TestServer } from './helpers/server.ts'

// Whole seconds: X.509 times carry no fractions.
const notAfter = new Date(Date.UTC(2031, 2, 4, 5, 6, 7))
const dir = mkdtempSync(join(tmpdir(), 'rj-cert-'))
let s: TestServer

before(async () => {
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'expiry.test' }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate: new Date(Date.now() - 60_000), notAfterDate: notAfter
  })
  writeFileSync(join(dir, 'cert.pem'), pems.cert)
  writeFileSync(join(dir, 'key.pem'), pems.private)
  s = await startTestServer({ TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') })
})
after(async () => { await s.close(); rmSync(dir, { recursive: true, force: true }) })

test('the gauge holds the served certificate\'s notAfter, as a client reads it in the handshake', async () => {
  const peer = await new Promise<PeerCertificate>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: s.server.ports.https, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate())
      socket.end()
    }).on('error', reject)
  })
  assert.equal(peer.subject.CN, 'expiry.test')
  const seen = Date.parse(peer.valid_to) / 1000
  assert.equal(seen, notAfter.getTime() / 1000)
  const metrics = parseMetrics(await (await fetch(`${s.admin}/metrics`)).text())
  assert.equal(sample(metrics, 'journey_tls_certificate_expiry_timestamp_seconds', { listener: 'https' }), seen)
})
