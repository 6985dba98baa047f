// journey.decode.body_received_ms: how far into decode the request body had been read off the connection to
// its last byte — so a long decode tells a slow uploader (received late, parsed at once) from a costly parse
// (received at once). Checked against the client's own clock: when it wrote the body's last byte.
// journey.decode.body_parsed_ms: how far into decode that body had been parsed, so the rest of decode is
// validation: checked with a parser and a validator each made to take 20 ms.
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import { gzipSync } from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import compress from '@fastify/compress'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import type { FastifyServerOptions } from 'fastify'
import { now, toEpochMs } from '../../src/journey/clock.ts'
import { summarize, type JourneySummary } from '../../src/journey/index.ts'
import { renderRow } from '../../src/journey/page.ts'
import { connect, responses } from '../helpers/raw.ts'
import { durationMs, ms, roots, stage, waterfall } from '../helpers/spans.ts'
import { busy } from '../helpers/busy.ts'
import { tracedJourney, type TracedJourney } from '../helpers/traced.ts'

const RECEIVED = 'journey.decode.body_received_ms'
const PARSED = 'journey.decode.body_parsed_ms'
/** Now on the clock spans are stamped with (the journey's monotonic clock as epoch ms), in this process. */
const epochNow = (): number => toEpochMs(now())

/** What summarize() — the demo's log line — said of each /echo request, in order. */
const summaries: Array<JourneySummary | undefined> = []

async function app (t: TracedJourney): Promise<number> {
  await t.app.register(t.journey.plugin)
  t.app.addHook('onResponse', async (request) => {
    const rec = request.journey
    if (request.routeOptions.url === '/echo' && rec !== null) setImmediate(() => { summaries.push(summarize(rec)) })
  })
  await t.app.register(compress)
  t.app.post('/echo', async (request) => ({ bytes: JSON.stringify(request.body).length }))
  t.app.get('/', async () => ({ ok: true }))
  // A body left to the handler, which reads it itself.
  t.app.addContentTypeParser('application/octet-stream', (_request, _payload, done) => { done(null) })
  t.app.post('/raw', async (request) => {
    let bytes = 0
    for await (const chunk of request.raw) bytes += (chunk as Buffer).length
    return { bytes }
  })
  return await t.listen()
}

function decodeOf (t: TracedJourney, route: string, nth = 0): ReadableSpan {
  const all = t.spans.getFinishedSpans()
  const root = roots(all, route)[nth]
  assert.ok(root, `trace ${nth} of ${route}`)
  return stage(waterfall(all, root), 'decode')!
}

const json = Buffer.from(JSON.stringify({ a: 'x'.repeat(200_000) }))

test('HTTP/1.1: a body sent in two halves 150 ms apart is received where the client wrote its last byte; a body sent at once early in decode', async () => {
  const t = tracedJourney()
  try {
    const view = t.journey.recent // the journey page's view collects from its first use
    const c = await connect(await app(t))
    const gz = gzipSync(json)
    const sent: number[] = []
    for (const [body, encoding] of [[json, undefined], [gz, 'gzip']] as const) {
      await c.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${encoding === undefined ? '' : `Content-Encoding: ${encoding}\r\n`}Content-Length: ${body.length}\r\n\r\n`)
      const half = Math.floor(body.length / 2)
      await sleep(20)
      await c.write(body.subarray(0, half))
      await sleep(150)
      sent.push(epochNow())
      await c.write(body.subarray(half))
      assert.match(await c.read(responses(1)), /\{"bytes":200008\}$/)
    }
    await c.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n`)
    await c.write(json)
    await c.read(responses(1))
    c.close()
    await sleep(30)

    for (const [i, what] of [[0, 'plain'], [1, 'gzip']] as const) {
      const decode = decodeOf(t, '/echo', i)
      const received = decode.attributes[RECEIVED] as number
      assert.equal(typeof received, 'number', `${what}: ${JSON.stringify(decode.attributes)}`)
      // The server cannot have read the last byte before the client wrote it, and reads it within a few ms.
      const receivedAt = ms(decode.startTime) + received
      assert.ok(receivedAt >= sent[i]! - 0.1, `${what}: received ${(receivedAt - sent[i]!).toFixed(2)} ms after the client wrote it`)
      assert.ok(receivedAt - sent[i]! < 30, `${what}: received ${(receivedAt - sent[i]!).toFixed(2)} ms after the client wrote it`)
      assert.ok(received >= 140 && received <= durationMs(decode), `${what}: ${received} ms of a ${durationMs(decode)} ms decode`)
      // Parsed (gzip: decompressed too) after it had all arrived, and before decode ended.
      const parsed = decode.attributes[PARSED] as number
      assert.ok(parsed >= received && parsed <= durationMs(decode), `${what}: parsed at ${parsed}, received at ${received}`)
    }
    // The log line says the same (summarize(), to the µs)...
    assert.equal(summaries.length, 3)
    for (const i of [0, 1]) {
      const received = decodeOf(t, '/echo', i).attributes[RECEIVED] as number
      assert.ok(Math.abs(summaries[i]!.bodyReceivedMs! - received) <= 0.0006, `summary ${summaries[i]!.bodyReceivedMs} against span ${received}`)
    }
    // ...and the journey page, over the decode bar.
    const rows = view.snapshot().recent.filter(r => r.route === '/echo').reverse()
    assert.equal(rows.length, 3)
    for (const i of [0, 1]) {
      const received = decodeOf(t, '/echo', i).attributes[RECEIVED] as number
      assert.ok(Math.abs(rows[i]!.bodyReceivedMs! - received) < 0.001, `page ${rows[i]!.bodyReceivedMs} against span ${received}`)
      const shown = /title="decode [^"]*; the body had all arrived after ([\d.]+) ms/.exec(renderRow(rows[i]!))
      assert.ok(shown !== null && Math.abs(Number(shown[1]) - received) < 0.5, `the decode bar's title: ${shown?.[0]}`)
    }
    const atOnce = decodeOf(t, '/echo', 2)
    assert.ok((atOnce.attributes[RECEIVED] as number) < durationMs(atOnce), 'sent at once: received before decode ended (then parsed)')
  } finally {
    await t.close()
  }
})

test('no body_received_ms without a body, for a body the handler reads itself, or for a body cut off', async () => {
  const t = tracedJourney()
  try {
    const port = await app(t)
    const c = await connect(port)
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await c.read(responses(1))
    await c.write('POST /raw HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 6\r\n\r\nabc')
    await sleep(60)
    await c.write('def')
    assert.match(await c.read(responses(1)), /\{"bytes":6\}$/)
    c.close()
    const cut = await connect(port)
    await cut.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n`)
    await cut.write(json.subarray(0, 1000))
    await sleep(50)
    cut.close()
    await sleep(50)

    assert.equal(decodeOf(t, '/').attributes[RECEIVED], undefined, 'GET')
    const raw = decodeOf(t, '/raw')
    assert.equal(raw.attributes[RECEIVED], undefined, `the handler's body ended after decode: ${JSON.stringify(raw.attributes)}`)
    assert.equal(raw.attributes[PARSED], undefined, 'nor was it parsed in decode: its parser only handed it on')
    const all = t.spans.getFinishedSpans()
    const handler = stage(waterfall(all, roots(all, '/raw')[0]!), 'handler')!
    assert.equal(handler.attributes['journey.handler.body_arriving'], true, 'its arrival is the handler\'s')
    const cutOff = decodeOf(t, '/echo')
    assert.equal(cutOff.attributes[RECEIVED], undefined, `cut off mid-body: ${JSON.stringify(cutOff.attributes)}`)
  } finally {
    await t.close()
  }
})

test('HTTP/2: a stream whose body ends 150 ms after its headers', async () => {
  const t = tracedJourney({ fastify: { http2: true } as FastifyServerOptions })
  const session = http2.connect(`http://127.0.0.1:${await app(t)}`)
  try {
    let sentAt = 0
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/echo', ':method': 'POST', 'content-type': 'application/json' })
      let code = 0
      stream.on('response', h => { code = Number(h[':status']) })
      stream.on('error', reject)
      stream.on('end', () => resolve(code))
      stream.resume()
      stream.write(json.subarray(0, 1000))
      setTimeout(() => { sentAt = epochNow(); stream.end(json.subarray(1000)) }, 150)
    })
    assert.equal(status, 200)
    await sleep(30)
    const decode = decodeOf(t, '/echo')
    const received = decode.attributes[RECEIVED] as number
    assert.equal(typeof received, 'number', JSON.stringify(decode.attributes))
    const receivedAt = ms(decode.startTime) + received
    assert.ok(receivedAt >= sentAt - 0.1 && receivedAt - sentAt < 30, `received ${(receivedAt - sentAt).toFixed(2)} ms after the client ended the stream`)
    const parsed = decode.attributes[PARSED] as number
    assert.ok(parsed >= received && parsed <= durationMs(decode), `parsed at ${parsed}, received at ${received}, of a ${durationMs(decode)} ms decode`)
  } finally {
    session.close()
    await t.close()
  }
})


test('body_parsed_ms: a slow parser lies before it, a slow validation after it; absent when nothing was parsed', async () => {
  const t = tracedJourney()
  try {
    const view = t.journey.recent
    await t.app.register(t.journey.plugin)
    t.app.addHook('onResponse', async (request) => {
      const rec = request.journey
      if (rec !== null) setImmediate(() => { summaries.push(summarize(rec)) })
    })
    t.app.addContentTypeParser('application/x-slow', { parseAs: 'string' }, (_request, body, done) => {
      busy(20)
      done(null, JSON.parse(body as string))
    })
    t.app.post('/parse', async () => ({ ok: true }))
    // The route's own validator, as a large schema's would be: Fastify runs it after the preValidation hooks.
    t.app.post('/validate', { schema: { body: { type: 'object' } }, validatorCompiler: () => (data: unknown) => { busy(20); return { value: data } } }, async () => ({ ok: true }))
    t.app.get('/', async () => ({ ok: true }))
    const c = await connect(await t.listen())
    const post = (path: string, type: string, body: string): string =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    summaries.length = 0
    await c.write(post('/parse', 'application/x-slow', '{"a":1}'))
    await c.read(responses(1))
    await c.write(post('/validate', 'application/json', '{"a":1}'))
    await c.read(responses(1))
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await c.read(responses(1))
    // Last: Fastify closes the connection after a body that is not JSON.
    await c.write(post('/validate', 'application/json', '{"a":'))
    assert.match(await c.read(responses(1)), /^HTTP\/1.1 400/)
    c.close()
    await sleep(30)

    const slowParse = decodeOf(t, '/parse')
    const parsed = slowParse.attributes[PARSED] as number
    const received = slowParse.attributes[RECEIVED] as number
    assert.ok(parsed - received >= 19.5, `parsed ${parsed} ms into decode, received at ${received}: the 20 ms parser lies between`)
    // (< 10: the wrong mark would put the 20 ms here; a loaded host may add a few ms of its own.)
    assert.ok(durationMs(slowParse) - parsed < 10, `${durationMs(slowParse) - parsed} ms after the parse, with nothing to validate`)

    const slowValidate = decodeOf(t, '/validate')
    const vParsed = slowValidate.attributes[PARSED] as number
    assert.ok(vParsed < 10, `parsed ${vParsed} ms into decode`)
    assert.ok(durationMs(slowValidate) - vParsed >= 19.5, `${durationMs(slowValidate) - vParsed} ms after the parse: the 20 ms validator`)

    const notJson = decodeOf(t, '/validate', 1)
    assert.equal(typeof notJson.attributes[RECEIVED], 'number', 'a body that is not JSON arrived...')
    assert.equal(notJson.attributes[PARSED], undefined, `...and was never parsed: ${JSON.stringify(notJson.attributes)}`)
    assert.equal(decodeOf(t, '/').attributes[PARSED], undefined, 'GET')

    // The log line and the page say the same as the span.
    assert.equal(summaries.length, 4)
    assert.ok(Math.abs(summaries[0]!.bodyParsedMs! - parsed) <= 0.0006, `summary ${summaries[0]!.bodyParsedMs} against span ${parsed}`)
    assert.equal(summaries[2]!.bodyParsedMs, undefined, 'GET')
    assert.equal(summaries[3]!.bodyParsedMs, undefined, 'not JSON')
    const row = view.snapshot().recent.find(r => r.route === '/parse')!
    assert.ok(Math.abs(row.bodyParsedMs! - parsed) < 0.001, `page ${row.bodyParsedMs} against span ${parsed}`)
    const shown = /title="decode [^"]*; the body had all arrived after [\d.]+ ms and was parsed by ([\d.]+) ms; the rest is preValidation hooks and schema validation/.exec(renderRow(row))
    assert.ok(shown !== null && Math.abs(Number(shown[1]) - parsed) < 0.5, `the decode bar's title: ${renderRow(row)}`)
    // And as two ticks on the bar, in order, inside decode: arrived, then parsed.
    const ticks = [...renderRow(row).matchAll(/class="mark" style="left:([\d.]+)%" title="([^"]*) ms into decode"/g)]
    assert.deepEqual(ticks.map(m => m[2]!.split(',')[0]), ['the body had all arrived', 'the body was parsed; validation follows'])
    const bar = row.stages.find(x => x.stage === 'decode')!
    const at = (m: RegExpMatchArray): number => Number(m[1]) / 100 * row.durationMs - bar.startMs
    assert.ok(Math.abs(at(ticks[0]!) - received) < 0.01 && Math.abs(at(ticks[1]!) - parsed) < 0.01, `ticks at ${ticks.map(m => m[1]).join(', ')}%`)
    assert.doesNotMatch(renderRow(view.snapshot().recent.find(r => r.route === '/')!), /into decode"/, 'no ticks without a body')
  } finally {
    await t.close()
  }
})
