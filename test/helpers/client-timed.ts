// Random raw clients over HTTP and HTTPS that time what they do — the connect, every write, the first and
// the last byte of each answer — on the clock the journey marks with (performance.now() in this process,
// where the server runs too), and every request's waterfall held against those times: no stage may start
// before the bytes it needs were sent, nor end after the client had the answer that stage produced.
// Durations alone (spans.test.ts) would not catch a stage shifted in time, or an epoch anchor that is off.
// HTTP/2 clients (Node's own, over TLS) join them when the server speaks it: there the marks are the client
// stream's events. A seeded generator (CLIENT_TIMED_SEED=n replays a run); on each connection, a request
// is answered before the next is sent, or two go pipelined.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import { after, before, test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import tls from 'node:tls'
import { gzipSync } from 'node:zlib'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import { toEpochMs } from '../../src/journey/clock.ts'
import type { Precision } from '../../src/journey/stages.ts'
import { prng } from './prng.ts'
import { assertWellFormed, durationMs, ms, roots, stage, waterfall, type Waterfall } from './spans.ts'
import { startTestServer, type TestServer } from './server.ts'

let t: TestServer

/** Span times are epoch ms from [s, ns]: about 0.2 µs of float resolution at today's epoch, and the SDK's ns rounding. */
const EPS = 0.005

interface Sent {
  what: string
  traceId: string
  /** Marks (performance.now()) taken just before the write that held: the request's first byte, its header block's last, its body's last. */
  firstByte: number
  headEnd: number
  bodyEnd: number
  /** Taken in the 'data' handler of the chunk that held the final response's first byte, and its last. */
  answerStart: number
  answerEnd: number
  ioMs?: number
  /** Only the connection's first request: the mark before connect() was called. */
  connect?: number
  /** http and https are HTTP/1.1; h2 is HTTP/2 over TLS, where the marks are the client stream's events. */
  over: 'http' | 'https' | 'h2'
  status: number
  body: string
  expected?: string
}

interface Chunk { at: number, end: number }

/** A socket that remembers when each chunk arrived and how many bytes it brought the total to. */
function recorder (socket: net.Socket): { text: () => string, chunks: Chunk[], until: (pred: (text: string) => number) => Promise<number> } {
  let text = ''
  const chunks: Chunk[] = []
  let waiter: (() => void) | undefined
  socket.on('data', (d: Buffer) => {
    const at = performance.now()
    text += d.toString('latin1')
    chunks.push({ at, end: text.length })
    waiter?.()
  })
  return {
    text: () => text,
    chunks,
    // `pred` returns the byte offset the wait is for, or -1 while it has not arrived.
    until: (pred) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => { waiter = undefined; reject(new Error(`no answer in 5 s; have ${JSON.stringify(text.slice(-300))}`)) }, 5000)
      const check = (): void => {
        const at = pred(text)
        if (at >= 0) { clearTimeout(timer); waiter = undefined; resolve(at) }
      }
      waiter = check
      check()
    })
  }
}

/** When the byte at `offset` had arrived: the first chunk that reached past it. */
const arrivalOf = (chunks: Chunk[], offset: number): number => chunks.find(c => c.end > offset)!.at

/** The end of the response head that starts at `from` (after its blank line), or -1. */
const headEndAt = (text: string, from: number): number => {
  const i = text.indexOf('\r\n\r\n', from)
  return i === -1 ? -1 : i + 4
}

/** Splits `bytes` into 1–3 pieces at random places (keeping at least one byte each). */
function pieces (bytes: Buffer, r: (n: number) => number): Buffer[] {
  const cuts = [...new Set(Array.from({ length: r(3) }, () => 1 + r(Math.max(1, bytes.length - 1))))].filter(c => c < bytes.length).sort((a, b) => a - b)
  const out: Buffer[] = []
  let at = 0
  for (const c of [...cuts, bytes.length]) { out.push(bytes.subarray(at, c)); at = c }
  return out
}

/** Writes the pieces with 0–25 ms between them; returns the mark taken before each write. */
async function writeInPieces (socket: net.Socket, parts: Buffer[], r: (n: number) => number): Promise<number[]> {
  const marks: number[] = []
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) await sleep(r(26))
    marks.push(performance.now())
    socket.write(parts[i]!)
  }
  return marks
}

/** The mark of the write that carried byte `offset`, for pieces written in order. */
function markOf (parts: Buffer[], marks: number[], offset: number): number {
  let end = 0
  for (let i = 0; i < parts.length; i++) {
    end += parts[i]!.length
    if (offset < end) return marks[i]!
  }
  throw new Error(`offset ${offset} past the request`)
}

async function open (port: number, secure: boolean): Promise<net.Socket> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s: net.Socket = secure
      ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: 'localhost' }, () => resolve(s))
      : net.connect({ port, host: '127.0.0.1' }, () => resolve(s))
    s.once('error', reject)
  })
  // Each piece leaves when written: Nagle's algorithm would hold a piece until the one before was ACKed.
  return socket.setNoDelay(true)
}

/** One random HTTP/1.1 request: its head and body as they go on the wire, and what to expect back. */
interface Built {
  what: string
  traceId: string
  head: Buffer
  body: Buffer
  ioMs?: number
  expected?: string
  /** Sent with `Expect: 100-continue`: the body waits for the server's 100. */
  expect: boolean
}

function build (r: (n: number) => number, allowExpect: boolean): Built {
  const traceId = randomBytes(16).toString('hex')
  const head = ['Host: x', `traceparent: 00-${traceId}-${randomBytes(8).toString('hex')}-01`]
  let target = 'GET /'
  let body = Buffer.alloc(0)
  let what = target
  let ioMs: number | undefined
  let expected: string | undefined
  let expect = false
  const kind = r(5)
  if (kind === 1) {
    ioMs = r(16)
    target = what = `GET /io?ms=${ioMs}`
  } else if (kind > 1) {
    target = 'POST /echo'
    expected = JSON.stringify({ message: 'x'.repeat(r(3000)) })
    const framing = ['content-length', 'chunked', 'gzip', 'expect'][r(allowExpect ? 4 : 3)]!
    what = `POST /echo ${framing} ${expected.length} B`
    head.push('Content-Type: application/json')
    const raw = Buffer.from(expected)
    if (framing === 'chunked') {
      const half = r(raw.length)
      const chunk = (b: Buffer): string => b.length === 0 ? '' : `${b.length.toString(16)}\r\n${b.toString('latin1')}\r\n`
      head.push('Transfer-Encoding: chunked')
      body = Buffer.from(chunk(raw.subarray(0, half)) + chunk(raw.subarray(half)) + '0\r\n\r\n', 'latin1')
    } else {
      body = framing === 'gzip' ? gzipSync(raw) : raw
      if (framing === 'gzip') head.push('Content-Encoding: gzip')
      if (framing === 'expect') { head.push('Expect: 100-continue'); expect = true }
      head.push(`Content-Length: ${body.length}`)
    }
  }
  return { what, traceId, head: Buffer.from(`${target} HTTP/1.1\r\n${head.join('\r\n')}\r\n\r\n`, 'latin1'), body, ioMs, expected, expect }
}

/**
 * One connection: 1–4 turns, each a random request answered before the next turn, or (one turn in five)
 * two requests pipelined — sent together, answered in order.
 */
async function converse (secure: boolean, r: (n: number) => number): Promise<Sent[]> {
  const connect = performance.now()
  const socket = await open(secure ? t.server.ports.https : t.server.ports.http, secure)
  const got = recorder(socket)
  const sent: Sent[] = []
  let consumed = 0
  try {
    for (let i = 0, n = 1 + r(4); i < n; i++) {
      await sleep(r(31)) // think time
      const pipelined = r(5) === 0
      const requests = pipelined ? [build(r, false), build(r, false)] : [build(r, true)]
      // Marks per request: before the write holding its first byte, its header block's last, its body's last.
      const marks: Array<{ firstByte: number, headEnd: number, bodyEnd: number }> = []
      const only = requests[0]!
      if (only.expect) {
        const headMarks = await writeInPieces(socket, pieces(only.head, r), r)
        // The body goes only once the server said 100 Continue, as curl does for large bodies.
        const continued = await got.until(text => headEndAt(text, consumed))
        assert.ok(got.text().startsWith('HTTP/1.1 100 Continue', consumed), `100 Continue before the body: ${JSON.stringify(got.text().slice(consumed, consumed + 80))}`)
        consumed = continued
        const bodyMarks = await writeInPieces(socket, pieces(only.body, r), r)
        marks.push({ firstByte: headMarks[0]!, headEnd: headMarks.at(-1)!, bodyEnd: bodyMarks.at(-1)! })
      } else {
        const all = Buffer.concat(requests.flatMap(q => [q.head, q.body]))
        const parts = pieces(all, r)
        const written = await writeInPieces(socket, parts, r)
        let at = 0
        for (const q of requests) {
          marks.push({ firstByte: markOf(parts, written, at), headEnd: markOf(parts, written, at + q.head.length - 1), bodyEnd: markOf(parts, written, at + q.head.length + q.body.length - 1) })
          at += q.head.length + q.body.length
        }
      }

      for (const [k, q] of requests.entries()) {
        // Each final response: its head, then Content-Length bytes (every answer here has one).
        const start = consumed
        const end = await got.until(text => {
          const h = headEndAt(text, start)
          if (h === -1) return -1
          const m = /content-length: *(\d+)/i.exec(text.slice(start, h))
          assert.ok(m !== null, `a Content-Length: ${text.slice(start, h)}`)
          return text.length >= h + Number(m[1]) ? h + Number(m[1]) : -1
        })
        const answer = got.text().slice(start, end)
        consumed = end
        sent.push({
          what: pipelined ? `${q.what} (pipelined ${k + 1} of 2)` : q.what,
          traceId: q.traceId,
          ...marks[k]!,
          answerStart: arrivalOf(got.chunks, start),
          answerEnd: arrivalOf(got.chunks, end - 1),
          ioMs: q.ioMs,
          connect: i === 0 && k === 0 ? connect : undefined,
          over: secure ? 'https' : 'http',
          status: Number(answer.slice(9, 12)),
          body: answer.slice(headEndAt(answer, 0)),
          expected: q.expected
        })
      }
    }
  } finally {
    socket.destroy()
  }
  return sent
}

/**
 * One HTTP/2 session over TLS: 1–4 random streams, one after another. Node's client sends frames as it is
 * asked to, so the marks are taken before request() (the HEADERS frame) and before the body's last write,
 * and at the stream's 'response' (HEADERS back) and 'end' (END_STREAM).
 */
async function converseH2 (r: (n: number) => number): Promise<Sent[]> {
  const connect = performance.now()
  const session = http2.connect(`https://127.0.0.1:${t.server.ports.https}`, { rejectUnauthorized: false })
  session.on('error', () => {}) // a failure shows as the stream's
  const sent: Sent[] = []
  try {
    for (let i = 0, n = 1 + r(4); i < n; i++) {
      await sleep(r(31))
      const traceId = randomBytes(16).toString('hex')
      const headers: http2.OutgoingHttpHeaders = { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }
      let what: string
      let ioMs: number | undefined
      let expected: string | undefined
      let body: Buffer | undefined
      const kind = r(4)
      if (kind === 0) {
        headers[':path'] = '/'
        what = 'GET /'
      } else if (kind === 1) {
        ioMs = r(16)
        headers[':path'] = `/io?ms=${ioMs}`
        what = `GET ${headers[':path']}`
      } else {
        headers[':method'] = 'POST'
        headers[':path'] = '/echo'
        headers['content-type'] = 'application/json'
        expected = JSON.stringify({ message: 'x'.repeat(r(3000)) })
        body = Buffer.from(expected)
        if (r(2) === 1) {
          body = gzipSync(body)
          headers['content-encoding'] = 'gzip'
        }
        what = `POST /echo ${headers['content-encoding'] === 'gzip' ? 'gzip' : 'identity'} ${expected.length} B`
      }
      const firstByte = performance.now()
      const stream = session.request(headers, { endStream: body === undefined })
      let answerStart = NaN
      let status = 0
      const chunks: Buffer[] = []
      stream.on('response', h => { answerStart = performance.now(); status = Number(h[':status']) })
      stream.on('data', (d: Buffer) => chunks.push(d))
      const ended = new Promise<number>((resolve, reject) => {
        stream.on('end', () => resolve(performance.now()))
        stream.on('error', reject)
      })
      let bodyEnd = firstByte
      if (body !== undefined) {
        // The body in one or two DATA frames, 0–25 ms apart.
        const cut = r(2) === 1 ? 1 + r(body.length - 1) : 0
        if (cut > 0) {
          stream.write(body.subarray(0, cut))
          await sleep(r(26))
        }
        bodyEnd = performance.now()
        stream.end(body.subarray(cut))
      }
      const answerEnd = await ended
      sent.push({
        what, traceId, firstByte, headEnd: firstByte, bodyEnd, answerStart, answerEnd, ioMs,
        connect: i === 0 ? connect : undefined,
        over: 'h2',
        status,
        body: Buffer.concat(chunks).toString(),
        expected
      })
    }
  } finally {
    session.destroy()
  }
  return sent
}

/** Per rule, how far inside its bound each request was (ms): the smallest says how tight the bound is. */
type Margins = Map<string, number[]>

function check (s: Sent, w: Waterfall, precision: Precision, margins: Margins): void {
  const at = (mark: number): number => toEpochMs(mark)
  const start = (name: string): number => ms(stage(w, name)!.startTime)
  const end = (name: string): number => ms(stage(w, name)!.endTime)
  const label = `${s.over} ${s.what}`
  const within = (margin: number, what: string, side: string): void => {
    assert.ok(margin >= -EPS, `${label}: ${what}, but it was ${(-margin).toFixed(3)} ms ${side} the client's mark`)
    margins.set(what, [...margins.get(what) ?? [], margin])
  }
  const notBefore = (t: number, mark: number, what: string): void => within(t - at(mark), what, 'before')
  const notAfter = (t: number, mark: number, what: string): void => within(at(mark) - t, what, 'after')

  assert.equal(s.status, 200, `${label}: ${s.body}`)
  if (s.expected !== undefined) assert.equal(s.body, s.expected, `${label}: echoed`)
  assertWellFormed(w, precision)
  const names = w.stages.map(x => x.name)
  if (s.connect !== undefined) {
    assert.ok(names.includes('journey.accept'), `${label}: a connection's first request has accept: ${names}`)
    notBefore(start('accept'), s.connect, 'accept starts after the client called connect()')
    if (s.over !== 'http') {
      notBefore(start('tls'), s.connect, 'tls starts after connect()')
      notAfter(end('tls'), s.answerStart, 'tls ends before the answer arrived')
    }
  } else {
    assert.ok(!names.includes('journey.accept') && !names.includes('journey.tls'), `${label}: a later request has no accept or tls: ${names}`)
  }
  if (s.over === 'h2') {
    // No read stage: nghttp2 reads the frames natively; parse starts where Node handed the headers to JS.
    notBefore(start('parse'), s.headEnd, 'parse starts after the HEADERS frame was sent (HTTP/2)')
  } else {
    notBefore(start('read'), s.firstByte, 'read starts after the first byte was sent')
    notBefore(end('read'), s.headEnd, 'read ends after the last header byte was sent')
  }
  notBefore(end('decode'), s.bodyEnd, 'decode ends after the last body byte was sent')
  notBefore(start('handler'), s.bodyEnd, 'the handler starts after the last body byte was sent')
  if (s.ioMs !== undefined) {
    // A timer may fire up to a millisecond early: Node counts its loop time in whole milliseconds.
    assert.ok(durationMs(stage(w, 'handler')!) >= s.ioMs - 1, `${label}: handler ${durationMs(stage(w, 'handler')!).toFixed(3)} ms holds the ${s.ioMs} ms wait`)
  }
  notAfter(end('handler'), s.answerStart, 'the handler ends before the answer arrived')
  notAfter(end('serialize'), s.answerStart, 'serialize ends before the answer arrived')
  notAfter(start('write'), s.answerStart, 'write starts before the answer arrived')
  // 'finish' is every byte handed to the kernel: for answers this small, before the client's read of them
  // (on HTTP/2, the stream's close: after its END_STREAM went out, before the client's 'end').
  notAfter(end('write'), s.answerEnd, 'write ends before the last byte arrived')
  notAfter(ms(w.root.endTime), s.answerEnd, 'the request span ends before the last byte arrived')
}

/**
 * The test, on a server in `precision` mode; with `h2`, its HTTPS listener speaks HTTP/2 too (HTTPS_HTTP2)
 * and a third of the clients use it. One server per test file: the SDK registers itself globally.
 */
export function clientTimedTest (precision: Precision, h2 = false): void {
  before(async () => { t = await startTestServer({ JOURNEY_PRECISION: precision, ...(h2 ? { HTTPS_HTTP2: 'true' } : {}) }) })
  after(async () => { await t.close() })
  const over = h2 ? 'HTTP, HTTPS and HTTP/2' : 'HTTP and HTTPS'
  test(`${precision} precision: random keep-alive clients over ${over}; no stage starts before the bytes it needs were sent or ends after the client had its answer`, run(precision, h2))
}

const run = (precision: Precision, h2: boolean) => async (ctx: TestContext): Promise<void> => {
  const seed = Number(process.env.CLIENT_TIMED_SEED ?? Math.floor(Math.random() * 2 ** 31))
  ctx.diagnostic(`seed ${seed} (CLIENT_TIMED_SEED=${seed} replays it)`)
  const r = prng(seed)
  // Every comparison assumes one epoch anchor for the whole run: a wall clock stepped meanwhile moves it.
  const anchor = toEpochMs(0)
  const sent: Sent[] = []
  // Two clients at a time, so that one's bytes arrive while the server is busy with the other's.
  for (let round = 0; round < 12; round++) {
    // Each has a generator of its own: how their awaits interleave must not change what the seed replays.
    const both = await Promise.all([0, 1].map(async () => {
      const over = r(h2 ? 3 : 2)
      const own = prng(r(2 ** 31))
      return await (over === 2 ? converseH2(own) : converse(over === 1, own))
    }))
    sent.push(...both.flat())
  }
  assert.equal(toEpochMs(0), anchor, 'the wall clock was stepped during the run: the comparison does not hold, run it again')
  const ids = new Set(sent.map(s => s.traceId))
  const spans = await t.spansWhere(all => roots(all).filter(x => ids.has(x.spanContext().traceId)).length === ids.size)
  const rootOf = new Map<string, ReadableSpan>(roots(spans).map(x => [x.spanContext().traceId, x]))
  const kinds = new Map<string, number>()
  const margins: Margins = new Map()
  for (const s of sent) {
    check(s, waterfall(spans, rootOf.get(s.traceId)!), precision, margins)
    const k = `${s.over} ${s.what.replace(/\?ms=\d+| \d+ B/g, '').replace(/ \(pipelined \d of 2\)/, ', pipelined')}`
    kinds.set(k, (kinds.get(k) ?? 0) + 1)
  }
  ctx.diagnostic(`${sent.length} requests: ${[...kinds].sort().map(([k, n]) => `${k} ×${n}`).join(', ')}`)
  for (const [what, m] of margins) {
    const sorted = m.sort((a, b) => a - b)
    ctx.diagnostic(`${what}: by ${sorted[0]!.toFixed(3)} ms at least, ${sorted[sorted.length >> 1]!.toFixed(3)} at the median (${m.length} requests)`)
  }
}
