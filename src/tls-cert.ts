// TLS material for the HTTPS listener: the configured PEM files, or a development certificate
// generated at start-up (ECDSA P-256: fast to generate and to handshake) so `npm start` needs nothing else.
import { X509Certificate, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import selfsigned from 'selfsigned'
import { ConfigError } from './config.ts'

export interface TlsMaterial {
  key: string
  cert: string
  /** SHA-256 fingerprint, so a user can check what curl -k accepted. */
  fingerprint256: string
  /** The certificate's notAfter: the server reports it, so an alert can come before clients refuse it. */
  notAfter: Date
  generated: boolean
  /**
   * The keys that encrypt TLS session tickets (48 bytes), when several processes must share them: a client
   * resumes a session only on a server holding the keys that issued its ticket. Undefined: Node's random
   * per-server keys.
   */
  ticketKeys?: Buffer
}

/** The certificate, key and ticket keys a cluster's primary hands each worker (cluster.ts), as sent over IPC. */
export interface SharedTls { key: string, cert: string, generated: boolean, ticketKeys: string }

/** The material to hand each worker, with ticket keys made here for all of them (48 bytes, as Node takes them). */
export function shareTls (tls: TlsMaterial): SharedTls {
  return { key: tls.key, cert: tls.cert, generated: tls.generated, ticketKeys: randomBytes(48).toString('hex') }
}

/** Says, once per cluster or process, which certificate a client will see when none was configured. */
export function announceGenerated (log: { info: (fields: object, msg: string) => void }, tls: TlsMaterial): void {
  if (tls.generated) log.info({ fingerprint256: tls.fingerprint256 }, 'generated a self-signed development certificate for localhost (set TLS_CERT/TLS_KEY to use your own)')
}

export function sharedTlsMaterial (shared: SharedTls): TlsMaterial {
  const x509 = new X509Certificate(shared.cert)
  return { key: shared.key, cert: shared.cert, fingerprint256: x509.fingerprint256, notAfter: x509.validToDate, generated: shared.generated, ticketKeys: Buffer.from(shared.ticketKeys, 'hex') }
}

export async function loadTlsMaterial (certPath: string | undefined, keyPath: string | undefined): Promise<TlsMaterial> {
  if (certPath !== undefined && keyPath !== undefined) {
    const read = (name: string, path: string): Promise<string> => readFile(path, 'utf8').catch((err: Error) => {
      throw new ConfigError(`${name}=${path} cannot be read: ${err.message}`)
    })
    // One after the other, so when both are wrong the error always names TLS_CERT first.
    const cert = await read('TLS_CERT', certPath)
    const key = await read('TLS_KEY', keyPath)
    let x509: X509Certificate
    try {
      x509 = new X509Certificate(cert)
    } catch (err) {
      throw new ConfigError(`TLS_CERT=${certPath} is not a PEM certificate: ${(err as Error).message}`)
    }
    return { key, cert, fingerprint256: x509.fingerprint256, notAfter: x509.validToDate, generated: false }
  }
  const notBeforeDate = new Date(Date.now() - 60_000)
  const notAfterDate = new Date(notBeforeDate.getTime() + 30 * 24 * 3600 * 1000)
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] }
    ]
  })
  const x509 = new X509Certificate(pems.cert)
  return { key: pems.private, cert: pems.cert, fingerprint256: x509.fingerprint256, notAfter: x509.validToDate, generated: true }
}
