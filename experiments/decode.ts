// Experiment `decode`: what turning body bytes into a value costs — JSON vs protobuf, plain vs compressed,
// small vs large — measured by the decode stage (receiving the rest of the body, decompressing, parsing,
// validating) against the whole request.
//
// Hypothesis: decode grows with the decoded size, not the wire size: a gzip or brotli body crosses the
// wire in a fraction of the bytes but costs decompression on top of the same parse; protobuf decodes
// the same order faster than JSON.parse + schema validation of its JSON form.
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { Agent } from 'undici'
import { encodeOrder, type Order } from '../src/app/orders.ts'
import { experiment } from './lib/experiment.ts'
import { delta } from './lib/metrics.ts'
import { startServer } from './lib/server.ts'
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
  hypothesis: 'Decode cost follows decoded size, not wire size: compression saves wire bytes and adds work; protobuf decodes an order faster than JSON + schema validation.',
  options: { requests: 300, rounds: 10, concurrency: 4, warmup: 4, warmupRounds: 20 },
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
    return {
      rows,
      notes: [
        `${opts.concurrency === 1 ? 'One request at a time on one keep-alive connection' : `${opts.concurrency} requests in flight on as many keep-alive connections`}; the bodies take turns (\`rounds\`), each turn after \`warmup\` uncounted requests, after \`warmupRounds\` uncounted rounds of every body.`,
        'Decode: Fastify preParsing → preHandler — the rest of the body arriving, decompression, parsing, schema validation (docs/stages.md).',
        'Request mean: first request byte → response handed to the kernel; /echo also serializes the message back. Client mean: sending the request → the last byte of the answer, on the client.'
      ]
    }
  }
})
