// An HTTP/2 request with Node's own client, for the tests of HTTP/2 apps.
import type { ClientHttp2Session } from 'node:http2'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** Sends one request on `session` (a JSON body, if given) and resolves with its status once its response has ended. */
export function h2 (session: ClientHttp2Session, path: string, method = 'GET', body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': method, ...(body === undefined ? {} : { 'content-type': 'application/json' }) })
    let status = 0
    stream.on('response', h => { status = Number(h[':status']) })
    stream.on('error', reject)
    stream.resume()
    stream.on('end', () => resolve(status))
    stream.end(body)
  })
}

// Raw HTTP/2, for what Node's own client refuses to send (an oversized header block, say).

/** An HTTP/2 frame: 9-byte header (length, type, flags, stream id), then the payload. */
export function h2Frame (type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9)
  header.writeUIntBE(payload.length, 0, 3)
  header[3] = type
  header[4] = flags
  header.writeUInt32BE(stream, 5)
  return Buffer.concat([header, payload])
}

/** An HPACK integer with an n-bit prefix (RFC 7541, 5.1). */
function hpackInt (value: number, prefixBits: number): number[] {
  const max = (1 << prefixBits) - 1
  if (value < max) return [value]
  const out = [max]
  for (value -= max; value >= 128; value >>= 7) out.push((value & 127) | 128)
  out.push(value)
  return out
}

/**
 * A request's header block, HPACK-encoded without Huffman or the dynamic table: `GET /` over `http`
 * (static-table entries), then each header as a literal never indexed.
 */
export function hpackRequest (headers: Record<string, string>): Buffer {
  const fields = Object.entries(headers).map(([name, value]) => Buffer.concat([
    Buffer.from([0x10, ...hpackInt(name.length, 7)]), Buffer.from(name), Buffer.from(hpackInt(value.length, 7)), Buffer.from(value)
  ]))
  return Buffer.concat([Buffer.from([0x82, 0x86, 0x84]), ...fields])
}

/** The client's connection preface and an empty SETTINGS frame: what a raw client sends first. */
export function h2Preface (): Buffer {
  return Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(0x4, 0, 0, Buffer.alloc(0))])
}

/** The preface, then `block` as stream 1's HEADERS (END_STREAM) and CONTINUATION frames. */
export function h2RawRequest (block: Buffer, maxFrame = 16_384): Buffer {
  const frames = [h2Preface()]
  for (let off = 0; off < block.length; off += maxFrame) {
    const endHeaders = off + maxFrame >= block.length ? 0x4 : 0
    frames.push(off === 0 ? h2Frame(0x1, 0x1 | endHeaders, 1, block.subarray(off, off + maxFrame)) : h2Frame(0x9, endHeaders, 1, block.subarray(off, off + maxFrame)))
  }
  return Buffer.concat(frames)
}

/** The frames in `bytes` a server sent: type, stream, and a GOAWAY's or an RST_STREAM's error code. */
export function h2Frames (bytes: Buffer): Array<{ type: number, stream: number, goawayError?: number, rstError?: number }> {
  const frames: Array<{ type: number, stream: number, goawayError?: number, rstError?: number }> = []
  for (let off = 0; off + 9 <= bytes.length; off += 9 + bytes.readUIntBE(off, 3)) {
    const type = bytes[off + 3]!
    frames.push({
      type,
      stream: bytes.readUInt32BE(off + 5) & 0x7fffffff,
      ...(type === 0x7 ? { goawayError: bytes.readUInt32BE(off + 13) } : {}),
      ...(type === 0x3 && off + 13 <= bytes.length ? { rstError: bytes.readUInt32BE(off + 9) } : {})
    })
  }
  return frames
}

/**
 * Writes `bytes` to a plain (h2c) server on 127.0.0.1:`port` and collects what it answers until `done` says
 * enough (or the server closes, or 3 s pass); then closes and returns the server's frames.
 */
export async function h2RawExchange (port: number, bytes: Buffer, done: (frames: ReturnType<typeof h2Frames>) => boolean): Promise<ReturnType<typeof h2Frames>> {
  const socket = connect(port, '127.0.0.1')
  const got: Buffer[] = []
  socket.on('data', (d: Buffer) => got.push(d))
  socket.on('error', () => {})
  socket.write(bytes)
  for (let i = 0; i < 150 && !socket.closed && !done(h2Frames(Buffer.concat(got))); i++) await sleep(20)
  socket.destroy()
  await sleep(50)
  return h2Frames(Buffer.concat(got))
}
