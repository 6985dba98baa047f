// Experiment `serialize`: responses of 10, 1,000 and 10,000 rows, turned into JSON by the route's compiled
// response schema (fast-json-stringify) or by plain JSON.stringify; then the largest asked for gzip, br and
// zstd (Accept-Encoding).
//
// Hypothesis: the serialize stage grows with the response, and at thousands of rows it is the stage that
// dominates the request, while the handler (which only hands the rows over) stays flat. Which serializer
// is cheaper is what the experiment measures, at each size; and that compressing the response is write's
// time, not serialize's (@fastify/compress works in its onSend hook and as the body is written).
import { experiment } from './lib/experiment.ts'
import type { Row } from './lib/report.ts'
import { meanMs } from './lib/metrics.ts'
import { interleaved, warmUp, withOneConnection } from './lib/one-at-a-time.ts'

const SIZES = [10, 1_000, 10_000]
const SERIALIZERS = ['schema', 'json'] as const
/** Asked of the largest schema response only: where compressing it lands (write), against the same rows sent plain. */
const ENCODINGS = ['gzip', 'br', 'zstd'] as const

export const serialize = experiment({
  name: 'serialize',
  hypothesis: 'The serialize stage grows with the response and, at thousands of rows, dominates the request while the handler stays flat; it measures whether the compiled response schema (fast-json-stringify) or JSON.stringify is cheaper at each size, and that compressing the response lands in write, not serialize.',
  options: { requests: 100, rounds: 10, warmup: 1, warmupRounds: 30 },
  chart: { title: 'GET /report: serialize and write by rows, serializer and encoding (means)', unit: 'ms', series: [{ label: 'serialize', key: 'serialize mean ms' }, { label: 'write', key: 'write mean ms' }, { label: 'client: request time', key: 'client mean ms' }] },
  async run (opts, progress) {
    const rows: Row[] = []
    const largest = SIZES.at(-1)!
    const variants = [
      ...SIZES.flatMap(items => SERIALIZERS.map(serializer => ({ items, serializer, encoding: undefined as string | undefined }))),
      ...ENCODINGS.map(encoding => ({ items: largest, serializer: 'schema' as const, encoding }))
    ]
    const path = (v: typeof variants[number]): string => `/report?items=${v.items}&serializer=${v.serializer}`
    // undici's request() sends no Accept-Encoding of its own, so the other variants are sent plain.
    const headers = (v: typeof variants[number]): Record<string, string> | undefined => v.encoding === undefined ? undefined : { 'accept-encoding': v.encoding }
    await withOneConnection({}, async (server, agent) => {
      await warmUp(server, agent, variants.map(v => ({ path: path(v), opts: { headers: headers(v) } })), opts.warmupRounds)
      const measured = await interleaved(server, agent, variants.map(v => ({ path: path(v), opts: { headers: headers(v) } })), {
        requests: opts.requests, rounds: opts.rounds, warmup: opts.warmup, label: 'serialize', progress
      })
      for (const [i, { items, serializer, encoding }] of variants.entries()) {
        const variant = `${items.toLocaleString('en')} ${serializer === 'schema' ? 'schema' : 'stringify'}${encoding === undefined ? '' : ` ${encoding}`}`
        const m = measured[i]!
        const stage = (s: string): number => m.stageMeanMs('/report', s)
        const duration = meanMs(m.before, m.after, 'http_server_request_duration_seconds', { http_route: '/report' })
        rows.push({
          variant,
          failed: m.failed,
          'response KiB': m.bytes / 1024,
          'client mean ms': m.clientMeanMs,
          'request duration mean ms': duration,
          'handler mean ms': stage('handler'),
          'serialize mean ms': stage('serialize'),
          'write mean ms': stage('write'),
          'serialize share': stage('serialize') / duration
        })
      }
    })
    return {
      rows,
      notes: [
        'Variants: rows per response, then the serializer: "schema" is the route\'s compiled response schema (fast-json-stringify), "stringify" is JSON.stringify (?serializer=json).',
        'One keep-alive connection, one request at a time, after `warmupRounds` uncounted rounds of every variant; the variants take turns (`rounds`), each turn after `warmup` uncounted requests.',
        'The handler returns rows built once at start-up (a slice), so what grows with the response is Fastify turning them into JSON (serialize) and handing the bytes to the kernel (write).',
        'Means from the histograms\' _sum/_count; serialize share = serialize mean / request duration mean.',
        `The last rows ask for the ${largest.toLocaleString('en')}-row schema response compressed (Accept-Encoding); response KiB is then what crossed the wire. @fastify/compress compresses in its onSend hook, after the journey's, or as the body is written: in write.`
      ]
    }
  }
})
