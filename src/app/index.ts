// The demo routes: each one makes one stage of the journey do real work. Knows nothing about telemetry.
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import compress from '@fastify/compress'
import type { FastifyPluginAsync } from 'fastify'
import { Piscina } from 'piscina'
import { burn } from './burn.js'
import { decodeOrder, orderSchema, summarize, type Order } from './orders.ts'

export interface AppOptions {
  computeMaxMs: number
  ioMaxMs: number
  downloadMaxKb: number
  workerThreads: number
}

/** The compute worker's entry, plain JavaScript (compute-worker.js says why; a test keeps it loadable without the stripper). */
export const COMPUTE_WORKER = new URL('./compute-worker.js', import.meta.url)

const CHUNK = Buffer.alloc(16 * 1024, 'journey\n')

// A defined shape, not "any JSON": arbitrarily deep input would parse, then overflow the stack when
// serialized back (seen at 5,000 levels). Unknown properties are dropped by Fastify's Ajv (removeAdditional).
const echoSchema = {
  type: 'object',
  required: ['message'],
  additionalProperties: false,
  properties: {
    message: { type: 'string', maxLength: 1_000_000 },
    items: { type: 'array', maxItems: 100_000, items: { type: ['string', 'number', 'boolean', 'null'] } }
  }
} as const

// GET /report: rows of an imaginary catalogue, built once (up to REPORT_MAX_ITEMS) so that answering
// costs the handler a slice, and the work left is turning them into JSON — the serialize stage.
const REPORT_MAX_ITEMS = 100_000
interface ReportItem { id: number, sku: string, name: string, price: number, inStock: boolean, tags: string[] }
let catalogue: ReportItem[] | undefined
function reportItems (n: number): ReportItem[] {
  // `name` first, where the schema has `id`: fast-json-stringify writes properties in the schema's order,
  // JSON.stringify in the object's, so the same rows, in the same bytes, say which serializer ran.
  catalogue ??= Array.from({ length: REPORT_MAX_ITEMS }, (_, i) => ({
    name: `Item ${i} of the journey catalogue`,
    id: i,
    sku: `SKU-${String(i).padStart(6, '0')}`,
    price: Math.round((i % 997) * 1.37 * 100) / 100,
    inStock: i % 3 !== 0,
    tags: i % 2 === 0 ? ['even', 'demo'] : ['odd']
  }))
  return catalogue.slice(0, n)
}
// With this schema Fastify serializes the reply with fast-json-stringify, compiled for the shape; with
// ?serializer=json the route uses plain JSON.stringify instead, for comparison.
const reportSchema = {
  querystring: {
    type: 'object',
    required: ['items'],
    properties: {
      items: { type: 'integer', minimum: 0, maximum: REPORT_MAX_ITEMS },
      serializer: { type: 'string', enum: ['schema', 'json'], default: 'schema' }
    }
  },
  response: {
    200: {
      type: 'object',
      properties: {
        count: { type: 'integer' },
        items: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'integer' },
              sku: { type: 'string' },
              name: { type: 'string' },
              price: { type: 'number' },
              inStock: { type: 'boolean' },
              tags: { type: 'array', items: { type: 'string' } }
            }
          }
        }
      }
    }
  }
} as const

export const demoApp: FastifyPluginAsync<AppOptions> = async (app, opts) => {
  // Request bodies may arrive gzip, deflate or br encoded. Decompressed bytes count against bodyLimit,
  // so a decompression bomb ends in 413 rather than in memory; other encodings get 415.
  await app.register(compress, {
    globalCompression: false,
    globalDecompression: true,
    requestEncodings: ['br', 'gzip', 'deflate']
  })

  // Under Node's permission model without --allow-worker no thread can start: the demo serves on, and only
  // /compute?offload=1 answers that it cannot (503), rather than the process dying at start.
  let pool: Piscina | undefined
  let noPool: string | undefined
  try {
    pool = new Piscina({
      filename: COMPUTE_WORKER.href,
      minThreads: opts.workerThreads,
      maxThreads: opts.workerThreads
    })
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException
    if (code !== 'ERR_ACCESS_DENIED') throw err
    noPool = `no worker thread can start here (${code}: ${message}; under --permission they need --allow-worker), so /compute?offload=1 answers 503`
    app.log.warn(noPool)
  }
  app.addHook('onClose', async () => { await pool?.destroy() })

  // Every route takes JSON (and /orders protobuf); Fastify's default text/plain parser would turn a
  // mislabelled body into a confusing schema error instead of 415.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser('application/x-protobuf', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, decodeOrder(body as Buffer))
    } catch (err) {
      const e = new Error(`invalid protobuf Order: ${(err as Error).message}`) as Error & { statusCode: number }
      e.statusCode = 400
      done(e, undefined)
    }
  })

  // Say which types are accepted: curl's default for --data is form-urlencoded, a common first surprise.
  app.setErrorHandler((err: Error & { code?: string, statusCode?: number }, request, reply) => {
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send({
        statusCode: 415,
        code: err.code,
        error: 'Unsupported Media Type',
        message: `Content-Type ${JSON.stringify(request.headers['content-type'] ?? '')} is not accepted: send application/json` +
          (request.routeOptions.url === '/orders' ? ' or application/x-protobuf' : '') +
          " (with curl: -H 'content-type: application/json')"
      })
    }
    return reply.send(err)
  })

  app.get('/', async () => ({ hello: 'journey' }))

  app.post('/echo', { schema: { body: echoSchema } }, async (request) => request.body)

  app.post('/orders', { schema: { body: orderSchema } }, async (request) => summarize(request.body as Order))

  app.get('/compute', {
    schema: {
      querystring: {
        type: 'object',
        required: ['ms'],
        properties: {
          ms: { type: 'integer', minimum: 0, maximum: opts.computeMaxMs },
          offload: { type: 'string', enum: ['0', '1', 'false', 'true'], default: '0' }
        }
      }
    }
  }, async (request, reply) => {
    const query = request.query as { ms: number, offload: string }
    const { ms } = query
    const offload = query.offload === '1' || query.offload === 'true'
    if (!offload) return { ms, offload, iterations: burn(ms) }
    if (pool === undefined) return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: noPool })
    return { ms, offload, iterations: await pool.run({ ms }) as number }
  })

  // Time spent before the route runs, in a hook of the app's own: an auth check that asks another service
  // (here: waits auth_ms) and turns away requests without credentials. It is in no stage of the journey:
  // it is the time between parse and decode, the `hooks` gap.
  app.get('/account', {
    onRequest: async (request, reply) => {
      const raw = (request.query as { auth_ms?: string }).auth_ms ?? '5'
      const ms = Number(raw)
      // Hooks run before schema validation, so this one checks its own input.
      if (!/^\d+$/.test(raw) || ms > opts.ioMaxMs) {
        return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `auth_ms must be an integer from 0 to ${opts.ioMaxMs}` })
      }
      await sleep(ms)
      if (request.headers.authorization === undefined) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ statusCode: 401, error: 'Unauthorized', message: 'send any Authorization header' })
      }
    }
  }, async () => ({ account: 'demo' }))

  // The serialize stage's route: the handler hands Fastify `items` rows, and Fastify turns them into JSON.
  // Compressed when the client asks (Accept-Encoding), as a production service would: @fastify/compress
  // compresses in its onSend hook (a small body at once) or in a stream as the body is written (a large
  // one), after the journey's onSend either way, so that cost shows up in the write stage.
  app.get('/report', { schema: reportSchema, compress: {} }, async (request, reply) => {
    const { items, serializer } = request.query as { items: number, serializer: 'schema' | 'json' }
    // A serializer of the reply's own replaces the route's compiled one (and then sets no content type).
    if (serializer === 'json') reply.serializer(JSON.stringify).type('application/json; charset=utf-8')
    const rows = reportItems(items)
    return { count: rows.length, items: rows }
  })

  app.get('/io', {
    schema: {
      querystring: { type: 'object', required: ['ms'], properties: { ms: { type: 'integer', minimum: 0, maximum: opts.ioMaxMs } } }
    }
  }, async (request) => {
    const { ms } = request.query as { ms: number }
    await sleep(ms)
    return { ms }
  })

  app.get('/download', {
    schema: {
      querystring: { type: 'object', required: ['kb'], properties: { kb: { type: 'integer', minimum: 0, maximum: opts.downloadMaxKb } } }
    }
  }, async (request, reply) => {
    const { kb } = request.query as { kb: number }
    const total = kb * 1024
    let sent = 0
    // A pull stream: the next chunk is produced only when the socket wants more, so a slow reader
    // shows up as backpressure in the write stage instead of as memory.
    const body = new Readable({
      read () {
        if (sent >= total) { this.push(null); return }
        const n = Math.min(CHUNK.length, total - sent)
        sent += n
        this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))
      }
    })
    return reply.type('application/octet-stream').header('content-length', total).send(body)
  })
}
