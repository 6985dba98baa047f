// Random pipelines of good, malformed and early-answered requests over raw sockets: every status line a
// client receives is counted exactly once on the server — as a request with that status, or (a bare 400)
// as a malformed request — and every connection opened is closed. A seeded generator, so a
// failure names the seed that reproduces it.
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { byLabel, scrape, sum } from '../../experiments/lib/metrics.ts'
import { booksOf } from '../helpers/books.ts'
import { prng } from '../helpers/prng.ts'
import { statusesOf } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer() })
after(async () => { await t.close() })

const SEEDS = [
  'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{"message":"hi!!"}',
  'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"mes\r\nd\r\nsage":"hi!!"}\r\n0\r\n\r\n',
  'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n', // Fastify's 400, before any hook
  'GET / HTTP/1.1\r\n\r\n', // Node's 400: no Host
  'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: tea\r\nContent-Length: 0\r\n\r\n', // Node's 417
  'GET / HTTP/1.0\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
  'CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n' // Node closes the connection, no answer
]

/** Overwrites a few bytes with ones that break HTTP framing (CR, LF, space, NUL, high bytes). */
function mutate (text: string, r: (n: number) => number): Buffer {
  const b = Buffer.from(text)
  const nasty = [0x0d, 0x0a, 0x20, 0x00, 0x3a, 0xff]
  for (let i = 1 + r(3); i > 0; i--) b[r(b.length)] = nasty[r(nasty.length)]!
  return b
}

/** One connection: writes 1–3 requests at once, reads until the server closes or stays quiet, counts status lines. */
function exchange (port: number, secure: boolean, payload: Buffer, statuses: Map<number, number>): Promise<void> {
  return new Promise(resolve => {
    const s = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : net.connect(port, '127.0.0.1')
    let text = ''
    let quiet: NodeJS.Timeout | undefined
    const rest = (): void => { clearTimeout(quiet); quiet = setTimeout(() => s.destroy(), 300) }
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); rest() })
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(quiet)
      for (const code of statusesOf(text)) if (code !== 100) statuses.set(code, (statuses.get(code) ?? 0) + 1)
      resolve()
    })
    // Over TLS the requests go in once the handshake is done, still in one write (one TLS record).
    if (secure) s.once('secureConnect', () => s.write(payload, rest))
    else s.write(payload, rest)
  })
}

interface ServerCounts { byStatus: Map<number, number>, badRequests: number, accepted: number, closed: number }

async function serverCounts (): Promise<ServerCounts> {
  const m = await scrape(`${t.admin}/metrics`)
  const byStatus = new Map<number, number>()
  for (const [status, n] of byLabel(m, 'http_server_request_duration_seconds_count', 'http_response_status_code')) {
    if (/^\d+$/.test(status)) byStatus.set(Number(status), n) // not a request cut off before any status went out
  }
  return {
    byStatus,
    badRequests: sum(m, 'journey_connection_errors_total', { reason: 'bad_request' }),
    accepted: sum(m, 'journey_connections_accepted_total'),
    closed: sum(m, 'journey_connections_closed_total')
  }
}

test('random pipelines of good, malformed and early-answered requests: every answer counted once, by status', () => randomPipelines(false))

// The same over TLS: the parser sees the requests as the TLS socket decrypts them, and Node's answers and
// closes go through it (in the default precision mode; docs/stages.md says what fine mode's TLS stream misses).
test('the same over HTTPS', () => randomPipelines(true))

async function randomPipelines (secure: boolean): Promise<void> {
  const seed = Number(process.env.MIXED_INPUT_SEED ?? Date.now() % 1_000_000)
  const r = prng(seed)
  const client = new Map<number, number>()
  // Connections of the run before (its last request's keep-alive one) are closed first: they would count here.
  let before = await serverCounts()
  for (let i = 0; i < 100 && before.closed !== before.accepted; i++) {
    await new Promise(resolve => setTimeout(resolve, 20))
    before = await serverCounts()
  }
  const connections = 400
  for (let done = 0; done < connections; done += 20) {
    await Promise.all(Array.from({ length: 20 }, () => {
      const parts: Buffer[] = []
      for (let i = 1 + r(3); i > 0; i--) {
        const text = SEEDS[r(SEEDS.length)]!
        parts.push(r(4) === 0 ? mutate(text, r) : Buffer.from(text))
      }
      return exchange(secure ? t.server.ports.https : t.server.ports.http, secure, Buffer.concat(parts), client)
    }))
  }
  await new Promise(resolve => setTimeout(resolve, 50))
  const after = await serverCounts()
  const server = new Map<number, number>()
  for (const [code, n] of after.byStatus) {
    const d = n - (before.byStatus.get(code) ?? 0)
    if (d !== 0) server.set(code, d)
  }
  // A malformed request is a connection error, answered with a bare 400 by Node only while the socket
  // can still be written (not, say, after a Connection: close answer to the request before it).
  const badRequests = after.badRequests - before.badRequests
  const clientRequests400 = client.get(400) ?? 0
  assert.ok(clientRequests400 >= (server.get(400) ?? 0) && clientRequests400 <= (server.get(400) ?? 0) + badRequests,
    `seed ${seed}: clients read ${clientRequests400} 400s; the server counted ${server.get(400) ?? 0} requests answered 400 and ${badRequests} malformed requests`)
  const others = (m: Map<number, number>): Array<[number, number]> => [...m].filter(([c]) => c !== 400).sort((a, b) => a[0] - b[0])
  assert.deepEqual(others(server), others(client), `seed ${seed}: every other answer the clients read, counted once as a request with that status`)
  assert.equal(after.accepted - before.accepted, connections, `seed ${seed}`)
  assert.equal(after.closed - before.closed, connections, `seed ${seed}: every connection closed and counted`)
  assert.ok(client.size >= 4, `seed ${seed}: the mix reached several statuses: ${JSON.stringify([...client])}`)
  const ok = await request(`${t.http}/`, { reset: true }) // Connection: close, so it is not left open for the next run
  assert.equal(ok.statusCode, 200)
  await ok.body.text()
  // The books balance even here (cut, early-answered, pipelined and aborted requests): per method and
  // route, the stages from read on plus the server's gaps are the request durations, so no time is counted
  // twice (overlapping stages would be) or lost.
  await new Promise(resolve => setTimeout(resolve, 50))
  const m = await scrape(`${t.admin}/metrics`)
  const books = booksOf(m)
  assert.ok(books.size >= 4, `seed ${seed}: ${[...books.keys()].join(', ')}`)
  for (const [key, b] of books) {
    assert.ok(Math.abs(b.parts - b.duration) < 1e-6, `seed ${seed}: ${key}: stages and gaps ${b.parts} = duration ${b.duration}`)
  }
}
