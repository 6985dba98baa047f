// Experiment `http2`: one slow request and nine fast ones sent together on one connection, as HTTP/1.1
// pipelining and as HTTP/2 streams (the server with HTTPS_HTTP2=true, over TLS either way).
//
// Hypothesis: HTTP/1.1 answers in order, so the fast responses wait for the slow one before them — head-of-
// line blocking, which the journey shows as their `pipelined` gap (their write stage stays short: the wait
// is not writing). HTTP/2 answers each stream when it is ready: the fast requests are fast, with no gap.
// Their stages are alike either way, except that HTTP/2 has no read stage (Node reads its frames natively).
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2'
import { Client } from 'undici'
import { experiment } from './lib/experiment.ts'
import type { Row } from './lib/report.ts'
import { delta, meanMs } from './lib/metrics.ts'
import { startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'

/** The slow request's handler time; the fast ones do nothing. */
const SLOW_MS = 100
const FAST = 9

export const http2 = experiment({
  name: 'http2',
  hypothesis: 'On one HTTP/1.1 connection fast responses wait behind a slow one pipelined before them (the pipelined gap); on one HTTP/2 connection each stream is answered when ready.',
  options: { rounds: 20 },
  chart: { title: `A ${SLOW_MS} ms request, then ${FAST} fast ones, on one connection (means of the fast ones)`, unit: 'ms', series: [{ label: 'client: fast request time', key: 'fast: client mean ms' }, { label: 'server: pipelined gap', key: 'fast: pipelined gap mean ms' }, { label: 'server: write stage', key: 'fast: write mean ms' }] },
  async run (opts, progress) {
    const server = await startServer({ HTTPS_HTTP2: 'true' })
    const rows: Row[] = []
    try {
      for (const variant of ['HTTP/1.1 pipelined', 'HTTP/2 streams'] as const) {
        const send = variant === 'HTTP/2 streams' ? await http2Sender(server) : http1Sender(server)
        // Warm-up: the server's first requests pay for compiling its code.
        await send.round()
        const before = await server.scrape()
        const started = Date.now()
        const fastMs: number[] = []
        const slowMs: number[] = []
        for (let i = 0; i < opts.rounds; i++) {
          const r = await send.round()
          fastMs.push(...r.fast)
          slowMs.push(r.slow)
          progress(`${variant}: round ${i + 1}/${opts.rounds}`)
        }
        await send.close()
        await annotate(`http2: ${variant}`, started, Date.now())
        const after = await server.scrape()
        const fast = { route: '/' }
        const stage = (s: string): number => meanMs(before, after, 'journey_stage_duration_seconds', { ...fast, stage: s })
        const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
        rows.push({
          variant,
          'fast: client mean ms': mean(fastMs),
          'fast: request duration mean ms': meanMs(before, after, 'http_server_request_duration_seconds', { http_route: '/' }),
          'fast: pipelined gap mean ms': delta(before, after, 'journey_gap_duration_seconds_sum', { ...fast, gap: 'pipelined' }) * 1000 /
            delta(before, after, 'http_server_request_duration_seconds_count', { http_route: '/' }),
          'fast: write mean ms': stage('write'),
          'fast: read mean ms': stage('read'),
          'slow: client mean ms': mean(slowMs)
        })
      }
    } finally {
      await server.stop()
    }
    return {
      rows,
      notes: [
        `Each round: GET /io?ms=${SLOW_MS}, then ${FAST} GET / sent at once on one TLS connection (undici pipelining ${FAST + 1}; node:http2 streams), one connection per variant.`,
        'Client time: request sent → its response\'s last byte. Server figures are means over the fast requests from /metrics; the pipelined gap is averaged over every fast request (zero where there was none).',
        'HTTP/2 has no read stage (—): nghttp2 reads the frames in C++; parse starts at the stream\'s decoded headers.'
      ]
    }
  }
})

interface Sender { round: () => Promise<{ slow: number, fast: number[] }>, close: () => Promise<void> }

/** Times `f` from its call to its settlement, in ms. */
async function timed (f: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await f()
  return performance.now() - t
}

/** A round over `get` (a GET on the variant's one connection): the slow request, then the fast ones at once. */
async function round (get: (path: string) => () => Promise<void>): Promise<{ slow: number, fast: number[] }> {
  const slow = timed(get(`/io?ms=${SLOW_MS}`))
  const fast = Array.from({ length: FAST }, () => timed(get('/')))
  return { slow: await slow, fast: await Promise.all(fast) }
}

function http1Sender (server: ExperimentServer): Sender {
  const client = new Client(`https://${server.host}:${server.https}`, { pipelining: FAST + 1, allowH2: false, connect: { rejectUnauthorized: false } })
  // blocking: false, or undici sends nothing more on the connection until this response's headers arrive.
  const get = (path: string) => async () => { const r = await client.request({ path, method: 'GET', blocking: false }); await r.body.text() }
  return {
    round: () => round(get),
    close: () => client.close()
  }
}

async function http2Sender (server: ExperimentServer): Promise<Sender> {
  const session: ClientHttp2Session = connectHttp2(`https://${server.host}:${server.https}`, { rejectUnauthorized: false })
  await new Promise((resolve, reject) => { session.once('connect', resolve); session.once('error', reject) })
  const get = (path: string) => () => new Promise<void>((resolve, reject) => {
    const stream = session.request({ ':path': path })
    stream.on('error', reject)
    stream.resume()
    stream.on('end', resolve)
  })
  return {
    round: () => round(get),
    close: () => new Promise(resolve => session.close(() => resolve()))
  }
}
