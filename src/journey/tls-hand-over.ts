// Over TLS, when a response's bytes reached the kernel. Node's TLS completes a write the kernel took at once
// a step later, from the event loop's check phase (a native setImmediate; over fine mode's JS stream,
// Node's JSStreamSocket defers it the same way), so a response's 'finish' waits for whatever that loop turn
// still runs — under load, other connections' requests. Measured here (wrk -c50 over HTTPS, plain
// node:https): 'finish' came 1.1 ms after end() returned at the median and 4 ms at p99, where plain HTTP's
// came 6 µs after; the journey's write stage read 2.8 ms on average over HTTPS against 41 µs over HTTP.
// No event marks the moment itself, so each TLS socket's writes are timed as they return (one clock read
// per write), and request-end.ts ends a response's write at its last one.
import { Socket } from 'node:net'
import { now } from './clock.ts'
import { CipherTap } from './cipher-tap.ts'
import type { ConnectionRecord } from './records.ts'
import { kConnection } from './observe-parser.ts'

/**
 * A TLS socket, with the internals read here (all undocumented; test/journey/internals.test.ts guards them):
 * `_writeGeneric`, where net.Socket hands every write (one chunk or a buffered batch) to its handle; the
 * handle's `_parent`, the TCP handle TLS runs over, whose writeQueueSize is what libuv still holds — or, in
 * fine mode, the CipherTap at `_parentWrap.stream`.
 */
type TlsSocket = Socket & {
  [kConnection]?: ConnectionRecord
  _writeGeneric: (writev: boolean, data: unknown, encoding: string, cb: (err?: Error) => void) => unknown
  _handle?: { _parent?: { writeQueueSize?: unknown }, _parentWrap?: { stream?: unknown } } | null
}

const writeGeneric = (Socket.prototype as unknown as Partial<TlsSocket>)._writeGeneric

/**
 * The socket's write: everything it was given so far (a socket writes a chunk as it comes, or all it had
 * buffered at once) goes to TLS, which encrypts it and hands the records to the TCP handle, or to the tap.
 * When that has returned, the kernel holds every byte unless libuv, or in fine mode the tap, still does.
 */
function timedWrite (this: TlsSocket, writev: boolean, data: unknown, encoding: string, cb: (err?: Error) => void): unknown {
  const result = writeGeneric!.call(this, writev, data, encoding, cb)
  const conn = this[kConnection]
  if (conn !== undefined) {
    const handle = this._handle
    const tap = handle?._parentWrap?.stream
    const all = tap instanceof CipherTap ? tap.kernelHasAll() : handle?._parent?.writeQueueSize === 0
    conn.handedAt = all ? now() : NaN
  }
  return result
}

/** Times the writes of a TLS connection's socket (once it is secure): conn.handedAt follows the latest. */
export function timeHandOver (socket: Socket): void {
  if (typeof writeGeneric === 'function') (socket as TlsSocket)._writeGeneric = timedWrite
}
