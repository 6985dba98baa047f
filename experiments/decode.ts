// Experiment `decode`: what turning body bytes into a value costs — JSON vs protobuf, plain vs compressed,
// small vs large — measured by the decode stage (receiving the rest of the body, decompressing, parsing,
// validating) against the whole request.
//
// Hypothesis: decode grows with the decoded size, not the wire size: a gzip or brotli body crosses the
// wire in a fraction of the bytes but costs decompression on top of the same parse; protobuf decodes
// the same order faster than JSON.parse + schema validation of its JSON form. And a slow uploader makes
// decode long without any more work for the server: its decode spans say the body arrived late
// (journey.decode.body_received_ms), with the parse after it as short as for a fast upload; and
// journey.decode.body_parsed_ms splits that work into parsing and validating.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { Agent } from 'undici'
import { encodeOrder, type Order } from '../src/app/orders.ts'
import { experiment } from './lib/experiment.ts'
import { delta } from './lib/metrics.ts'
import { startServer, type ExperimentServer } from './lib/server.ts'
import { interleaved, warmUp } from './lib/one-at-a-time.ts'

interface Case { variant: string, path: string, headers: Record<string, string>, body: Buffer, decodedBytes: number }

function cases (): Case[] {
  const json = (chars: number): Buffer => Buffer.from(JSON.stringify({ message: 'journey '.repeat(Math.ceil(chars / 8)).slice(0, chars) }))
  const order: Order = {
    id: 'exp', customer: 'ada', currency: 'EUR',
    items: Array.from({ length: 2000 }, (_, i) => ({ sku: `sku-${i}`, quantity: 1 + (i % 5), unitPriceCents: 100 + i }))
  }
  const big = json(512 * 1024)
  const orderJson = Buffer.from(JSON.stringify(order))
  const jsonType = { 'content-type': 'application/json' }
  return [
    { variant: 'JSON 1 KiB', path: '/echo', headers: jsonType, body: json(1024), decodedBytes: json(1024).length },
    { variant: 'JSON 64 KiB', path: '/echo', headers: jsonType, body: json(64 * 1024), decodedBytes: json(64 * 1024).length },
    { variant: 'JSON 512 KiB', path: '/echo', headers: jsonType, body: big, decodedBytes: big.length },
    { variant: 'gzip JSON 512 KiB', path: '/echo', headers: { ...jsonType, 'content-encoding': 'gzip' }, body: gzipSync(big), decodedBytes: big.length },
    { variant: 'br JSON 512 KiB', path: '/echo', headers: { ...jsonType, 'content-encoding': 'br' }, body: brotliCompressSync(big), decodedBytes: big.length },
    { variant: 'order as JSON', path: '/orders', headers: jsonType, body: orderJson, decodedBytes: orderJson.length },
    { variant: 'order as protobuf', path: '/orders', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.from(encodeOrder(order)), decodedBytes: orderJson.length }
  ]
}

export const decode = experiment({
  name: 'decode',
  hypothesis: 'Decode cost follows decoded size, not wire size: compression saves wire bytes and adds work; protobuf decodes an order faster than JSON + schema validation; a slow upload lengthens decode by its arrival, not by more work.',
  options: { requests: 300, rounds: 10, concurrency: 4, warmup: 4, warmupRounds: 20, uploads: 5, uploadKiBps: 2048 },
  chart: { title: 'Decode stage per body kind (mean)', unit: 'ms', series: [{ label: 'decode mean', key: 'decode mean ms' }, { label: 'whole request mean', key: 'request mean ms' }, { label: 'client mean', key: 'client mean ms' }] },
  async run (opts, progress) {
    const server = await startServer({ BODY_LIMIT_BYTES: String(4 * 1024 * 1024) })
    const agent = new Agent({ connections: opts.concurrency })
    const rows = []
    try {
      const all = cases()
      const targets = all.map(c => ({ path: c.path, opts: { body: c.body, headers: c.headers } }))
      await warmUp(server, agent, targets, opts.warmupRounds)
      // In turns, as the experiments comparing fractions of a millisecond are: the 1 KiB body's decode is
      // ≈ 0.1 ms, and a server still getting faster would otherwise charge the first bodies measured more.
      const measured = await interleaved(server, agent, targets, {
        requests: opts.requests, rounds: opts.rounds, warmup: opts.warmup, concurrency: opts.concurrency, label: 'decode', progress
      })
      for (const [i, c] of all.entries()) {
        const m = measured[i]!
        const decode = { route: c.path, method: 'POST', stage: 'decode' }
        const decodeSum = delta(m.before, m.after, 'journey_stage_duration_seconds_sum', decode)
        const n = delta(m.before, m.after, 'journey_stage_duration_seconds_count', decode)
        const requestSum = delta(m.before, m.after, 'http_server_request_duration_seconds_sum', { http_route: c.path })
        rows.push({
          variant: c.variant,
          'wire KiB': c.body.length / 1024,
          'decoded KiB': c.decodedBytes / 1024,
          failed: m.failed,
          'decode mean ms': (decodeSum / n) * 1000,
          'request mean ms': (requestSum / n) * 1000,
          'decode share %': (decodeSum / requestSum) * 100,
          'client mean ms': m.clientMeanMs
        })
      }
    } finally {
      await agent.close()
      await server.stop()
    }
    rows.push(...await uploads(opts.uploads, opts.uploadKiBps, progress))
    return {
      rows,
      notes: [
        `${opts.concurrency === 1 ? 'One request at a time on one keep-alive connection' : `${opts.concurrency} requests in flight on as many keep-alive connections`}; the bodies take turns (\`rounds\`), each turn after \`warmup\` uncounted requests, after \`warmupRounds\` uncounted rounds of every body.`,
        'Decode: Fastify preParsing → preHandler — the rest of the body arriving, decompression, parsing, schema validation (docs/stages.md).',
        'Request mean: first request byte → response handed to the kernel; /echo also serializes the message back. Client mean: sending the request → the last byte of the answer, on the client.',
        'Uploads (the last rows): the 512 KiB body sent whole, then paced to `uploadKiBps` in 16 KiB pieces, one at a time on a new connection each, traced on a second server: means over their decode spans. Body received at: journey.decode.body_received_ms, how far into decode the last byte had been read; after it: the server\'s own work (parsing, validating); parsed at: journey.decode.body_parsed_ms; validating: the rest of decode after it (preValidation hooks, schema validation).'
      ]
    }
  }
})

/**
 * The 512 KiB JSON body uploaded whole and paced to a slow client's rate, each on its own connection with a
 * sampled traceparent, to a server exporting those traces: the decode spans say when the body had arrived.
 */
async function uploads (n: number, kibPerSecond: number, progress: (line: string) => void): Promise<Array<Record<string, string | number>>> {
  const server = await startServer({ BODY_LIMIT_BYTES: String(4 * 1024 * 1024) }, { traces: true })
  if (server.spans === undefined) { await server.stop(); return [] } // a --url target: its spans are not ours to read
  const body = Buffer.from(JSON.stringify({ message: 'journey '.repeat(65536) }))
  const variants = [['JSON 512 KiB uploaded whole', Infinity], [`JSON 512 KiB uploaded at ${kibPerSecond / 1024} MiB/s`, kibPerSecond * 1024]] as const
  const sent: Array<{ traces: string[], clientMs: number[], failed: number }> = []
  try {
    // Uncounted: the first upload would otherwise pay for V8 compiling the server's code.
    for (let i = 0; i < 3; i++) await upload(server, body, Infinity)
    for (const [variant, rate] of variants) {
      const got = { traces: [] as string[], clientMs: [] as number[], failed: 0 }
      for (let i = 0; i < n; i++) {
        const u = await upload(server, body, rate)
        if (u.status === 200) { got.traces.push(u.traceId); got.clientMs.push(u.ms) } else got.failed++
        progress(`${variant}: ${i + 1}/${n}`)
      }
      sent.push(got)
    }
  } finally {
    await server.stop() // flushes its spans to this process's receiver
  }
  const mean = (xs: number[]): number => xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length
  return variants.map(([variant], i) => {
    const { traces, clientMs, failed } = sent[i]!
    const spans = traces.flatMap(id => server.spans!(id))
    const decodes = spans.filter(x => x.name === 'journey.decode')
    const attribute = (name: string): number[] => decodes.map(x => x.attributes[name]).filter((v): v is number => typeof v === 'number')
    const received = attribute('journey.decode.body_received_ms')
    const parsed = attribute('journey.decode.body_parsed_ms')
    const decodeMs = mean(decodes.map(x => x.end - x.start))
    const requestMs = mean(spans.filter(x => x.kind === 2).map(x => x.end - x.start))
    return {
      variant,
      'wire KiB': body.length / 1024,
      'decoded KiB': body.length / 1024,
      failed,
      'decode mean ms': decodeMs,
      'request mean ms': requestMs,
      'decode share %': (decodeMs / requestMs) * 100,
      'body received at ms': mean(received),
      'parsed at ms': mean(parsed),
      'after it ms': decodeMs - mean(received),
      'validating ms': decodeMs - mean(parsed),
      'client mean ms': mean(clientMs)
    }
  })
}

/** POST /echo on a new connection, the body in 16 KiB pieces no faster than `bytesPerSecond`; resolves with the status, ms and trace id. */
function upload (server: ExperimentServer, body: Buffer, bytesPerSecond: number): Promise<{ status: number, ms: number, traceId: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(server.http, server.host)
    const start = performance.now()
    const traceId = randomBytes(16).toString('hex')
    let answer = ''
    s.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\ntraceparent: 00-${traceId}-${randomBytes(8).toString('hex')}-01\r\nConnection: close\r\n\r\n`)
    const piece = 16 * 1024
    const next = (offset: number): void => {
      if (offset >= body.length || s.destroyed) return
      s.write(body.subarray(offset, offset + piece))
      const end = offset + piece
      // Ahead of the rate? Wait until the bytes sent so far are due.
      const due = Number.isFinite(bytesPerSecond) ? (end / bytesPerSecond) * 1000 - (performance.now() - start) : 0
      if (due > 1) setTimeout(next, due, end)
      else next(end)
    }
    next(0)
    s.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    s.on('error', reject)
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0), ms: performance.now() - start, traceId }))
  })
}
