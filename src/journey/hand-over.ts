// When a response's bytes reached the kernel. Node reports a write done after the fact, and a response's
// 'finish' waits for whatever runs before that report:
// - over TLS, a write the kernel took at once is completed from the event loop's check phase (a native
//   setImmediate; over fine mode's JS stream, Node's JSStreamSocket defers it the same way), so 'finish'
//   waits for the rest of that loop turn — under load, other connections' requests. Measured here (wrk -c50
//   over HTTPS, plain node:https): 'finish' came 1.1 ms after end() returned at the median and 4 ms at p99;
//   the journey's write stage read 2.8 ms on average over HTTPS against 41 µs over HTTP.
// - over plain TCP, 'finish' comes in a process.nextTick, after the ticks and promise callbacks queued
//   before it: 1.5 µs after the write at the median under wrk -c50, but for pipelined requests — each
//   response handed the socket inside the previous one's 'finish' — 11 µs at the median and 0.2 ms at p99
//   (plain node:http, 10 at a time); the journey's write stage read 26–31 µs on average there under wrk
//   (10 pipelined per connection), 14 µs timed here.
// No event marks the moment itself, so an HTTP/1.x socket's writes are timed as they return (one clock read
// per write; bench:ab measured no difference in CPU per request), and request-end.ts ends a response's
// write at its last one.
import { Socket } from 'node:net'
import { now } from './clock.ts'
import { CipherTap } from './cipher-tap.ts'
import type { ConnectionRecord, RequestRecord } from './records.ts'
import { kConnection } from './observe-parser.ts'

/**
 * A socket, with the internals read here (all undocumented; test/journey/internals.test.ts guards them):
 * `_writeGeneric`, where net.Socket hands every write (one chunk or a buffered batch) to its handle; the
 * handle's writeQueueSize, what libuv still holds — over TLS the TCP handle's under it, `_parent` (the TLS
 * handle's own always reads 0) — or, in fine mode, the CipherTap at `_parentWrap.stream`.
 */
type ObservedSocket = Socket & {
  [kConnection]?: ConnectionRecord
  _writeGeneric: (writev: boolean, data: unknown, encoding: string, cb: (err?: Error) => void) => unknown
  _handle?: { writeQueueSize?: unknown, _parent?: { writeQueueSize?: unknown }, _parentWrap?: { stream?: unknown } } | null
}

const writeGeneric = (Socket.prototype as unknown as Partial<ObservedSocket>)._writeGeneric

/**
 * The socket's write: everything it was given so far (a socket writes a chunk as it comes, or all it had
 * buffered at once) goes to the TCP handle — over TLS, encrypted first, the records handed to the TCP handle
 * or the tap. When that has returned, the kernel holds every byte unless libuv, or the tap, still does.
 */
function timedWrite (this: ObservedSocket, writev: boolean, data: unknown, encoding: string, cb: (err?: Error) => void): unknown {
  const result = writeGeneric!.call(this, writev, data, encoding, cb)
  const conn = this[kConnection]
  if (conn !== undefined) {
    const handle = this._handle
    const tap = handle?._parentWrap?.stream
    const all = tap instanceof CipherTap ? tap.kernelHasAll() : (handle?._parent ?? handle)?.writeQueueSize === 0
    if (all) {
      conn.handedAt = now()
    } else {
      conn.handedAt = NaN
      conn.queuedAt = now() // the kernel's buffer was full: rare, unless a client reads slowly
    }
  }
  return result
}

/**
 * A streamed response's journey.write.backpressure, at its end: whether one of its writes left bytes the
 * kernel would not take — the client (or the network) slower than the server. Not Node's 'drain', which
 * follows any write of a chunk as large as the stream's high-water mark (64 KiB; a file's chunks are), the
 * kernel taking it at once or not: with curl reading a 1 MiB file over loopback, 16 of 16 writes were
 * followed by 'drain', none left a byte in libuv. HTTP/2 writes no socket from JS (nghttp2 does, for every
 * stream): not seen there.
 */
export function settleBackpressure (rec: RequestRecord): void {
  if (rec.backpressure !== undefined) rec.backpressure = rec.conn.multiplexed ? undefined : rec.conn.queuedAt >= rec.writeStartAt
}

/** Times an HTTP/1.x socket's writes (a TLS socket's once it is secure): conn.handedAt follows the latest. */
export function timeHandOver (socket: Socket): void {
  if (typeof writeGeneric === 'function') (socket as ObservedSocket)._writeGeneric = timedWrite
}
