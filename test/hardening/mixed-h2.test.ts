// Random mixes of HTTP/2 streams on TLS sessions — good, rejected, unrouted, answered before any hook, and
// streams the client cancels as it opens them, while their handler runs, or in the middle of their download
// — against the real server with HTTPS_HTTP2: every status a client reads on a stream that completes is
// counted once under that status, every cut-off stream at most once as aborted (a download cut after its
// 200 with that status), and the books balance as on HTTP/1.1 (mixed-input.test.ts). Seeded: a failure
// names the seed that replays it (MIXED_H2_SEED).
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import { after, before, test } from 'node:test'
import { scrape, series, sum, type Metrics } from '../../experiments/lib/metrics.ts'
import { booksOf } from '../helpers/books.ts'
import { prng } from '../helpers/prng.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ HTTPS_HTTP2: 'true' }) })
after(async () => { await t.close() })

const KINDS = ['get', 'echo', 'bad-json', 'nope', 'bad-url', 'cancel', 'cancel-mid', 'download-cut'] as const
type Kind = typeof KINDS[number]
const PATHS: Record<Kind, string> = {
  get: '/', echo: '/echo', 'bad-json': '/echo', nope: '/nope', 'bad-url': '/%zz', cancel: '/', 'cancel-mid': '/io?ms=300', 'download-cut': '/download?kb=102400'
}
const { NGHTTP2_CANCEL } = http2.constants

interface Seen { statuses: Map<string, number>, cut: number, cancelled: number }

/** One stream of `kind` on `session`: what the client saw of it. */
function stream (session: http2.ClientHttp2Session, kind: Kind, seen: Seen): Promise<void> {
  return new Promise(resolve => {
    const post = kind === 'echo' || kind === 'bad-json'
    const req = session.request({ ':method': post ? 'POST' : 'GET', ':path': PATHS[kind], ...(post ? { 'content-type': 'application/json' } : {}) })
    let status: string | undefined
    req.on('response', (headers) => {
      status = String(headers[':status'])
      // Cut as its 200 arrives: 100 MiB cannot have been sent by then.
      if (kind === 'download-cut') req.close(NGHTTP2_CANCEL)
    })
    req.on('error', () => {})
    req.on('data', () => {})
    req.on('close', () => {
      if (kind === 'download-cut') seen.cut++
      else if (status !== undefined) seen.statuses.set(status, (seen.statuses.get(status) ?? 0) + 1)
      else if (kind === 'cancel' || kind === 'cancel-mid') seen.cancelled++
      else assert.fail(`a ${kind} stream closed without a response`)
      resolve()
    })
    if (post) req.end(kind === 'echo' ? '{"message":"hi"}' : '{bad')
    else req.end()
    if (kind === 'cancel') req.close(NGHTTP2_CANCEL)
    if (kind === 'cancel-mid') setTimeout(() => req.close(NGHTTP2_CANCEL), 50)
  })
}

/** The HTTP/2 requests the server counted, by status (completed ones) and aborted, with and without a status. */
function served (m: Metrics): { statuses: Map<string, number>, abortedWithStatus: number, abortedWithout: number } {
  const statuses = new Map<string, number>()
  let abortedWithStatus = 0
  let abortedWithout = 0
  for (const [labels, v] of series(m, 'http_server_request_duration_seconds_count', { network_protocol_version: '2' })) {
    const status = labels.get('http_response_status_code')
    if (labels.get('error_type') === 'aborted') {
      if (status === undefined) abortedWithout += v
      else abortedWithStatus += v
    } else statuses.set(status!, (statuses.get(status!) ?? 0) + v)
  }
  return { statuses, abortedWithStatus, abortedWithout }
}

test('random mixes of HTTP/2 streams: every completed answer counted once, by status; cut-off streams at most once, aborted', async () => {
  const seed = Number(process.env.MIXED_H2_SEED ?? Date.now() % 1_000_000)
  const r = prng(seed)
  const seen: Seen = { statuses: new Map(), cut: 0, cancelled: 0 }
  const m0 = await scrape(`${t.admin}/metrics`)
  const before = served(m0)
  const sessions = 60
  for (let i = 0; i < sessions; i++) {
    const session = http2.connect(t.https, { rejectUnauthorized: false })
    session.on('error', () => {})
    await Promise.all(Array.from({ length: 1 + r(5) }, () => stream(session, KINDS[r(KINDS.length)]!, seen)))
    await new Promise<void>(resolve => session.close(resolve))
  }
  await new Promise(resolve => setTimeout(resolve, 100))
  const m = await scrape(`${t.admin}/metrics`)
  const now = served(m)
  const grew = new Map([...now.statuses].map(([s, n]) => [s, n - (before.statuses.get(s) ?? 0)] as [string, number]).filter(([, n]) => n !== 0))
  const sorted = (x: Map<string, number>): Array<[string, number]> => [...x].sort((a, b) => a[0].localeCompare(b[0]))
  assert.deepEqual(sorted(grew), sorted(seen.statuses), `seed ${seed}: every answer a client read on a stream that completed, counted once with that status`)
  const withStatus = now.abortedWithStatus - before.abortedWithStatus
  const without = now.abortedWithout - before.abortedWithout
  // Every cut download had its 200 sent. A stream cancelled as it was opened may have been answered before
  // the session read the reset (the 200 left; the client, having cancelled, discarded it), or reset before
  // Node handed it to JavaScript at all (then no request was seen, and none is counted).
  assert.ok(withStatus >= seen.cut, `seed ${seed}: ${withStatus} cut off after their status, of ${seen.cut} downloads cut`)
  assert.ok(withStatus + without <= seen.cut + seen.cancelled, `seed ${seed}: ${withStatus} + ${without} aborted, of ${seen.cut + seen.cancelled} streams cut or cancelled`)
  assert.ok(seen.cancelled > 0 && seen.cut > 0 && seen.statuses.size >= 3, `seed ${seed}: the mix reached every case: ${JSON.stringify([...seen.statuses])}`)
  assert.equal(sum(m, 'journey_connections_accepted_total') - sum(m0, 'journey_connections_accepted_total'), sessions, `seed ${seed}`)
  // The books balance: per method and route, the stages from read on (HTTP/2 has no read) plus the server's
  // gaps are the request durations.
  const books = booksOf(m)
  for (const [key, b] of books) assert.ok(Math.abs(b.parts - b.duration) < 1e-6, `seed ${seed}: ${key}: stages and gaps ${b.parts}, duration ${b.duration}`)
})
