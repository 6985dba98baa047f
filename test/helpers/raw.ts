// A raw HTTP/1.1 client over node:net / node:tls: for what high-level clients will not do on purpose
// (headers in pieces, pipelining, malformed requests, reading slowly, vanishing mid-request).
import net from 'node:net'
import tls from 'node:tls'

export interface RawConnection {
  socket: net.Socket
  write: (data: string | Buffer) => Promise<void>
  /** Bytes received so far (cheap to poll, unlike the text for large bodies). */
  received: () => number
  /** The socket's error, if it had one (ECONNRESET: the peer reset it), for a failing test to say. */
  error: () => Error | undefined
  /** Resolves with everything received until the server closes or `until` matches the bytes so far. */
  read: (until?: (text: string) => boolean, timeoutMs?: number) => Promise<string>
  close: () => void
}

export async function connect (port: number, secure = false): Promise<RawConnection> {
  const socket: net.Socket = await new Promise((resolve, reject) => {
    const s = secure
      ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: 'localhost' }, () => resolve(s))
      : net.connect({ port, host: '127.0.0.1' }, () => resolve(s))
    s.once('error', reject)
  })
  let buffered = ''
  let received = 0
  let closed = false
  const waiters = new Set<() => void>()
  socket.on('data', (d: Buffer) => { received += d.length; buffered += d.toString('latin1'); for (const w of waiters) w() })
  socket.on('close', () => { closed = true; for (const w of waiters) w() })
  let error: Error | undefined
  socket.on('error', (err) => { error = err })
  return {
    socket,
    received: () => received,
    error: () => error,
    write: (data) => new Promise(resolve => socket.write(data, () => resolve())),
    read (until = () => false, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`raw read timed out; got ${JSON.stringify(buffered.slice(0, 200))}`)) }, timeoutMs)
        const check = (): void => {
          if (closed || until(buffered)) {
            clearTimeout(timer)
            waiters.delete(check)
            const out = buffered
            buffered = ''
            resolve(out)
          }
        }
        waiters.add(check)
        check()
      })
    },
    close: () => socket.destroy()
  }
}

/** True once `text` holds `n` complete responses with Content-Length bodies. */
export function responses (n: number): (text: string) => boolean {
  return (text) => countResponses(text) >= n
}

export function countResponses (text: string): number {
  let count = 0
  let at = 0
  for (;;) {
    const head = text.indexOf('\r\n\r\n', at)
    if (head === -1) return count
    const m = /content-length: *(\d+)/i.exec(text.slice(at, head))
    const end = head + 4 + (m === null ? 0 : Number(m[1]))
    if (end > text.length) return count
    count++
    at = end
  }
}

/** The status of every response line in `text`, in order (interim 100s included). */
export function statusesOf (text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map(m => Number(m[1]))
}

export function statusOf (text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
}

/** One GET whose header block arrives in two writes `gapMs` apart, on a new connection; resolves after the response. */
export async function splitHeaders (port: number, gapMs: number): Promise<void> {
  const c = await connect(port)
  await c.write('GET / HTTP/1.1\r\nHost: x\r\n')
  await new Promise(resolve => setTimeout(resolve, gapMs))
  await c.write('X-Late: yes\r\n\r\n')
  await c.read(responses(1))
  c.close()
}
