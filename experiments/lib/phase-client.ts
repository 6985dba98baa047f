// A client that times the phases of one request the way the server times its stages — the mirror view,
// like curl's -w timers: TCP connect, TLS handshake, request written, first response byte, last byte.
// Built on node:net/node:tls because connection phases are the question here (autocannon and undici reuse
// connections and do not expose them). One request per connection, `Connection: close`.
import { randomBytes } from 'node:crypto'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'

// Epoch ms from the monotonic clock, exactly as the server turns its stage marks into span times
// (src/journey/clock.ts): both processes anchor performance.now() on the same host's clock, so client
// phases and server spans of one request can be laid on one timeline.
const clock = (): number => performance.timeOrigin + performance.now()

export interface Phases {
  /** Epoch ms, from the monotonic clock (see `clock`). */
  start: number
  connected: number
  /** TLS only. */
  secure: number
  written: number
  firstByte: number
  end: number
  status: number
  error: string | undefined
  /** TLS: whether the server resumed `session`, and the ticket to resume with next time. */
  resumed: boolean
  session: Buffer | undefined
  /** With `trace`: the trace this request started (sent as a sampled W3C traceparent). */
  traceId: string | undefined
}

export interface TimedRequest {
  host: string
  port: number
  tls?: boolean
  path?: string
  timeoutMs?: number
  session?: Buffer
  /** Send a sampled traceparent, so a server that honours it traces this request under `traceId`. */
  trace?: boolean
}

export function timedRequest (opts: TimedRequest): Promise<Phases> {
  const traceId = opts.trace === true ? randomBytes(16).toString('hex') : undefined
  const p: Phases = { start: clock(), connected: NaN, secure: NaN, written: NaN, firstByte: NaN, end: NaN, status: 0, error: undefined, resumed: false, session: undefined, traceId }
  const traceparent = traceId === undefined ? '' : `traceparent: 00-${traceId}-${randomBytes(8).toString('hex')}-01\r\n`
  const req = `GET ${opts.path ?? '/'} HTTP/1.1\r\nHost: ${opts.host}\r\n${traceparent}Connection: close\r\n\r\n`
  return new Promise(resolve => {
    let head = ''
    const socket: Socket = opts.tls === true
      ? tlsConnect({ host: opts.host, port: opts.port, rejectUnauthorized: false, servername: 'localhost', session: opts.session }, function (this: TLSSocket) {
        p.secure = clock()
        p.resumed = this.isSessionReused()
        send()
      }).on('session', (ticket: Buffer) => { p.session = ticket }) // TLS 1.3 tickets arrive after the handshake
      : netConnect({ host: opts.host, port: opts.port }, () => send())
    socket.once('connect', () => { p.connected = clock() })
    function send (): void {
      socket.write(req, () => { p.written = clock() })
    }
    socket.setTimeout(opts.timeoutMs ?? 10_000, () => socket.destroy(new Error('timeout')))
    socket.on('data', (d: Buffer) => {
      if (Number.isNaN(p.firstByte)) p.firstByte = clock()
      if (p.status === 0) {
        head += d.toString('latin1', 0, Math.min(d.length, 64))
        const m = /^HTTP\/1\.1 (\d{3})/.exec(head)
        if (m !== null) p.status = Number(m[1])
      }
    })
    socket.on('error', (err) => { p.error = err.message })
    socket.on('close', () => { p.end = clock(); resolve(p) })
  })
}

export function quantile (values: number[], q: number): number {
  const v = values.filter(x => Number.isFinite(x)).sort((a, b) => a - b)
  return v.length === 0 ? NaN : v[Math.min(v.length - 1, Math.floor(q * v.length))]!
}
