// Malformed requests, client timeouts, failed TLS handshakes and connections dropped at MAX_CONNECTIONS, in
// the log: the first of each kind at once, with what Node said, then one line a minute per kind saying how
// many more there were. The journey counts every one (journey_connection_errors_total{reason},
// journey_tls_handshake_failures_total{reason}, journey_connections_dropped_total);
// the log must not become a second, unbounded copy of that count that a flood of bad input (or of
// connections) could fill the disk with.
import type { Logger } from 'pino'
import { clientErrorReason } from './journey/index.ts'

export class ClientErrorLog {
  // Per error code, how many arrived since the last line about it.
  private readonly pending = new Map<string, number>()
  private readonly timer: NodeJS.Timeout
  private readonly log: Logger

  constructor (log: Logger, intervalMs = 60_000) {
    this.log = log
    this.timer = setInterval(() => { this.flush() }, intervalMs).unref()
  }

  /**
   * `reason` is the label the journey counts it under, so a log line leads to its series and back; given when
   * it is not an HTTP/1 parser's reason (an HTTP/2 session's).
   */
  note (err: NodeJS.ErrnoException, listener: string, reason = clientErrorReason(err)): void {
    this.say(err, listener, reason, 'client error')
  }

  /**
   * A TLS handshake that failed (`reason` as journey_tls_handshake_failures_total counts it): a client that
   * rejected the certificate, an old protocol, plain HTTP on the HTTPS port. The error's code is OpenSSL's.
   */
  handshakeFailed (err: NodeJS.ErrnoException, listener: string, reason: string): void {
    this.say(err, listener, reason, 'TLS handshake failed')
  }

  private say (err: NodeJS.ErrnoException, listener: string, reason: string, what: string): void {
    const code = err.code ?? 'unknown'
    if (this.first(code)) this.log.info({ code, reason, err: err.message, listener }, `${what} (more of this code are summed up once a minute)`)
  }

  /** A connection Node closed unserved because `listener` had `max` open: a warning, since it is capacity, not a client's fault. */
  dropped (listener: string, max: number): void {
    if (this.first('MAX_CONNECTIONS')) {
      this.log.warn({ code: 'MAX_CONNECTIONS', maxConnections: max, listener }, 'connection dropped unserved: the listener had MAX_CONNECTIONS open (more are summed up once a minute)')
    }
  }

  /** Counts one of `code`: true for the first since the last line about it, which is said at once. */
  private first (code: string): boolean {
    const n = this.pending.get(code)
    if (n !== undefined) {
      this.pending.set(code, n + 1)
      return false
    }
    this.pending.set(code, 0)
    return true
  }

  /** One line per code that had more; a code that stayed quiet is forgotten, so its next one is said at once. */
  flush (): void {
    for (const [code, n] of this.pending) {
      if (n === 0) this.pending.delete(code)
      else {
        this.log.info({ code, count: n }, 'more of this code since the last line')
        this.pending.set(code, 0)
      }
    }
  }

  close (): void {
    clearInterval(this.timer)
    this.flush()
  }
}
