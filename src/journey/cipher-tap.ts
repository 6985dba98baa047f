// Fine mode on TLS: a stream between the TCP socket and TLS, so JS sees when ciphertext arrives.
//
// Node's TLS reads the TCP handle natively; no JS event marks ciphertext arrival. Handing TLS a JS Duplex
// instead of the socket makes Node run TLS over a JS stream (JSStreamSocket): each ciphertext chunk passes
// through here, is timestamped, and is then decrypted. That separates decrypt from read, at a real price
// (≈ +50% CPU per request measured here), which is why only JOURNEY_PRECISION=fine does it.
import { Duplex } from 'node:stream'
import net from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import { now } from './clock.ts'
import { kConnection } from './observe-parser.ts'
import type { ConnectionRecord } from './records.ts'

export class CipherTap extends Duplex {
  readonly raw: net.Socket
  [kConnection]?: ConnectionRecord

  constructor (raw: net.Socket) {
    super({ allowHalfOpen: false })
    this.raw = raw
    raw.on('data', (chunk: Buffer) => {
      const conn = this[kConnection]
      if (conn !== undefined) conn.cipherAt = now()
      if (!this.push(chunk)) raw.pause()
    })
    raw.on('end', () => this.push(null))
    raw.on('error', (err) => this.destroy(err))
    raw.on('close', () => this.destroy())
  }

  /** The bytes of the write in flight: handed to the raw socket, its callback (so this tap's count) not yet run. */
  private writing = 0

  override _read (): void { this.raw.resume() }
  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writing = chunk.length
    this.raw.write(chunk, cb)
  }

  // Node's TLS hands a response's records to a JS stream corked, all at once: written together, they reach
  // the kernel in one call, where one by one each waited for the one before to call back (a tick later).
  override _writev (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const raw = this.raw
    let bytes = 0
    raw.cork()
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!.chunk
      bytes += chunk.length
      if (i < chunks.length - 1) raw.write(chunk)
      else raw.write(chunk, cb)
    }
    raw.uncork()
    this.writing = bytes
  }

  /**
   * Whether the kernel holds every byte written to this tap: nothing left in the tap but the write in flight
   * (chunks wait in it only behind one, unless corked), and the raw socket took that at once — a write the
   * kernel did not take keeps the raw socket's count up until it completes.
   */
  kernelHasAll (): boolean {
    const pending = this.writableLength
    return (pending === 0 || pending === this.writing) && this.raw.writableLength === 0
  }
  override _final (cb: (err?: Error | null) => void): void { this.raw.end(cb) }
  override _destroy (err: Error | null, cb: (err?: Error | null) => void): void { this.raw.destroy(); cb(err) }

  // What the journey and the HTTP server read off a socket.
  get bytesRead (): number { return this.raw.bytesRead }
  get bytesWritten (): number { return this.raw.bytesWritten }
  get remoteAddress (): string | undefined { return this.raw.remoteAddress }
  get remotePort (): number | undefined { return this.raw.remotePort }
  get remoteFamily (): string | undefined { return this.raw.remoteFamily }
  get localAddress (): string | undefined { return this.raw.localAddress }
  get localPort (): number | undefined { return this.raw.localPort }
  setNoDelay (noDelay?: boolean): this { this.raw.setNoDelay(noDelay); return this }
  setKeepAlive (enable?: boolean, delay?: number): this { this.raw.setKeepAlive(enable, delay); return this }
}

/**
 * A plain TCP listener that feeds each connection to `tlsServer` through a CipherTap. Listen on it instead
 * (and set `maxConnections` on it: the listening server is the one that counts and drops connections; its
 * drops are passed on to `tlsServer`, whose observer counts them).
 */
export function cipherTapListener (tlsServer: TlsServer): net.Server {
  const tap = net.createServer((raw) => { tlsServer.emit('connection', new CipherTap(raw)) })
  tap.on('drop', (data) => tlsServer.emit('drop', data))
  return tap
}
