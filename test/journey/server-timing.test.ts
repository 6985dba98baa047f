/// <reference lib="dom" />
// The Server-Timing header (JOURNEY_SERVER_TIMING / serverTiming): each response carries the stages its
// request had before the headers went out, with the same durations as its stage spans, and a browser reads
// them next to its own timing of the same request.
import assert from 'node:assert/strict'
import { connect } from 'node:http2'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyServerOptions } from 'fastify'
import { Registry } from 'prom-client'
import { Agent, request } from 'undici'
import { createJourney } from '../../src/journey/index.ts'
import { serverTimingValue, type TimedRecord } from '../../src/journey/server-timing.ts'
import { STAGES } from '../../src/journey/stages.ts'
import { tcpInfoUnavailable } from '../../src/journey/tcp-info.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { listenLocal } from '../helpers/app.ts'
import { browserSkip, launchChromium } from '../helpers/browser.ts'

const skipBrowser = browserSkip()

interface Metric { name: string, dur: number | undefined, desc: string | undefined }

/** Parses a Server-Timing value as a browser does, for the forms the journey writes (no commas in quotes). */
function parse (value: string | string[] | undefined): Metric[] {
  assert.ok(typeof value === 'string', `a Server-Timing header: ${String(value)}`)
  return value.split(',').map(item => {
    const [name, ...params] = item.trim().split(';')
    const param = (key: string): string | undefined => params.find(p => p.startsWith(`${key}=`))?.slice(key.length + 1)
    const dur = param('dur')
    return { name: name!, dur: dur === undefined ? undefined : Number(dur), desc: param('desc')?.replace(/^"|"$/g, '') }
  })
}

const spanMs = (s: { duration: [number, number] }): number => s.duration[0] * 1000 + s.duration[1] / 1e6
/** The kernel's waits the header carries where TCP_INFO is read (the addon; CI has it): at accept, and before read when traced. */
const kernel = (...names: string[]): string[] => tcpInfoUnavailable === undefined ? names : []
const isStage = (name: string): boolean => (STAGES as readonly string[]).includes(name)

describe('the demo server with JOURNEY_SERVER_TIMING=true', () => {
  let t: TestServer
  before(async () => { t = await startTestServer({ JOURNEY_SERVER_TIMING: 'true' }) })
  after(async () => { await t.close() })

  test('a fresh HTTPS connection: every stage before the write, each as long as its span, and the trace id', async () => {
    const agent = new Agent({ connect: { rejectUnauthorized: false }, connections: 1 })
    try {
      t.exporter.reset()
      const r = await request(`${t.https}/compute?ms=30`, { dispatcher: agent })
      await r.body.text()
      const metrics = parse(r.headers['server-timing'])
      assert.deepEqual(metrics.map(m => m.name), ['accept', 'tls', 'read', 'parse', 'decode', 'handler', 'serialize', 'hooks', ...kernel('accept_kernel_wait', 'read_kernel_wait'), 'traceparent'])
      const [, traceId, spanId, flags] = metrics.at(-1)!.desc!.split('-')
      assert.equal(flags, '01')
      const spans = await t.spansWhere(s => s.some(x => x.name === 'journey.write' && x.spanContext().traceId === traceId))
      const mine = spans.filter(s => s.spanContext().traceId === traceId)
      const root = mine.find(s => s.parentSpanContext === undefined)!
      assert.equal(root.spanContext().spanId, spanId, 'the request span')
      for (const m of metrics.filter(m => isStage(m.name))) {
        const span = mine.find(s => s.name === `journey.${m.name}`)
        assert.ok(span, m.name)
        assert.ok(Math.abs(spanMs(span) - m.dur!) <= 0.002, `${m.name}: header ${m.dur} ms, span ${spanMs(span)} ms`)
      }
      assert.ok(metrics.find(m => m.name === 'handler')!.dur! >= 29, 'the 30 ms of work is in the handler')
      const hooks = Number(root.attributes['journey.gap.hooks_ms'])
      assert.ok(Math.abs(hooks - metrics.find(m => m.name === 'hooks')!.dur!) <= 0.002, `hooks gap: span ${hooks}`)
      assert.ok(!metrics.some(m => m.name === 'write'), 'the write starts after the headers are sent')
      // The kernel's waits are the spans' attributes, whole ms.
      const dur = (name: string): number | undefined => metrics.find(m => m.name === name)?.dur
      assert.equal(dur('accept_kernel_wait'), mine.find(s => s.name === 'journey.accept')!.attributes['journey.accept.kernel_wait_ms'])
      assert.equal(dur('read_kernel_wait'), mine.find(s => s.name === 'journey.read')!.attributes['journey.read.kernel_wait_ms'])

      // The next request on the same connection had no accept or TLS of its own.
      const again = await request(`${t.https}/`, { dispatcher: agent })
      await again.body.text()
      assert.deepEqual(parse(again.headers['server-timing']).map(m => m.name), ['read', 'parse', 'decode', 'handler', 'serialize', 'hooks', ...kernel('read_kernel_wait'), 'traceparent'])
    } finally {
      await agent.close()
    }
  })

  test('an error reply: the stage the error cut, then the error handler', async () => {
    const r = await request(`${t.http}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json', dispatcher: t.insecure })
    await r.body.text()
    assert.equal(r.statusCode, 400)
    const names = parse(r.headers['server-timing']).map(m => m.name)
    assert.ok(names.includes('decode') && !names.includes('handler'), names.join(', '))
    assert.ok(names.includes('error_handler'), names.join(', '))
  })

  test('in a browser: the handler\'s 50 ms in the navigation\'s serverTiming, inside the wait the browser measured', { skip: skipBrowser }, async () => {
    const browser = await launchChromium()
    try {
      const page = await browser.newPage()
      await page.goto(`${t.http}/compute?ms=50`)
      const nav = await page.evaluate(() => {
        const e = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming
        return { wait: e.responseStart - e.requestStart, timing: e.serverTiming.map(s => ({ name: s.name, dur: s.duration, desc: s.description })) }
      })
      const names = nav.timing.map(m => m.name)
      assert.deepEqual(names.slice(0, 2), ['accept', 'read'], names.join(', '))
      const handler = nav.timing.find(m => m.name === 'handler')
      assert.ok(handler !== undefined && handler.dur >= 49, JSON.stringify(nav.timing))
      // The browser's request→first byte holds the server's whole time from the request's first byte to its
      // headers; Chromium rounds its own timestamps to 0.1 ms. (Accept, and the kernel's waits: whole ms counted
      // in jiffies, and the accept queue's from the handshake, before the browser's request began.)
      const server = nav.timing.filter(m => isStage(m.name) && m.name !== 'accept').concat(nav.timing.filter(m => m.name === 'hooks')).reduce((sum, m) => sum + m.dur, 0)
      assert.ok(server <= nav.wait + 0.2, `server ${server.toFixed(3)} ms within the browser's wait of ${nav.wait.toFixed(3)} ms`)
      assert.deepEqual(names.filter(n => n.endsWith('_kernel_wait')), kernel('accept_kernel_wait', 'read_kernel_wait'), 'as devtools lists them')
    } finally {
      await browser.close()
    }
  })
})

describe('serverTimingValue (pure)', () => {
  const marks = (over: Partial<TimedRecord>): TimedRecord => ({
    acceptAt: NaN, acceptedAt: NaN, secureAt: NaN, beginAt: NaN, decryptStartAt: NaN, headersAt: NaN, requestAt: NaN,
    decodeStartAt: NaN, decodeEndAt: NaN, handlerStartAt: NaN, handlerEndAt: NaN, serializeEndAt: NaN,
    writeStartAt: NaN, finishAt: NaN, endAt: NaN, errorAt: NaN, sampled: false, traceId: undefined, spanId: undefined, ...over
  })

  test('durations to the µs, long ones and zero ones too; the trace of a sampled request', () => {
    const rec = marks({
      beginAt: 10, headersAt: 10.0004, requestAt: 10.0024, decodeStartAt: 10.003, decodeEndAt: 10.003,
      handlerStartAt: 10.0031, handlerEndAt: 1244.5709, serializeEndAt: 1244.5712,
      sampled: true, traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331'
    })
    assert.equal(serverTimingValue(rec, rec.serializeEndAt),
      'read;dur=0.000, parse;dur=0.002, decode;dur=0.000, handler;dur=1234.568, serialize;dur=0.000, hooks;dur=0.001, ' +
      'traceparent;desc="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"')
  })

  test('a connection\'s first request: its accept and TLS; an error: the stage it cut and the error handler', () => {
    const rec = marks({
      acceptAt: 1, acceptedAt: 1.05, secureAt: 3.05, beginAt: 3.1, headersAt: 3.2, requestAt: 3.3,
      decodeStartAt: 3.4, errorAt: 5.4, handlerEndAt: 6, serializeEndAt: 6
    })
    assert.equal(serverTimingValue(rec, rec.serializeEndAt),
      'accept;dur=0.050, tls;dur=2.000, read;dur=0.100, parse;dur=0.100, decode;dur=2.000, serialize;dur=0.000, hooks;dur=0.100, error_handler;dur=0.600')
  })

  test('the kernel\'s waits where read: at accept on a first request only, before read when measured', () => {
    const first = marks({
      acceptAt: 1, acceptedAt: 1.05, beginAt: 3.1, headersAt: 3.2, requestAt: 3.3, decodeStartAt: 3.4, decodeEndAt: 3.4,
      handlerStartAt: 3.4, handlerEndAt: 4, serializeEndAt: 4, conn: { kernel: { lastAckRecvMs: 8 } }, kernelReadWaitMs: 12
    })
    assert.match(serverTimingValue(first, first.serializeEndAt), /, hooks;dur=0\.100, accept_kernel_wait;dur=8, read_kernel_wait;dur=12$/)
    // A later request on the connection: no accept stage, so no accept queue; untraced: NaN, not measured.
    const later = { ...first, acceptAt: NaN, acceptedAt: NaN, kernelReadWaitMs: NaN }
    assert.match(serverTimingValue(later, later.serializeEndAt), /, hooks;dur=0\.100$/)
    // No addon: no kernel view.
    assert.match(serverTimingValue({ ...first, conn: { kernel: undefined }, kernelReadWaitMs: NaN }, first.serializeEndAt), /, hooks;dur=0\.100$/)
  })
})

describe('the plugin option', () => {
  test('off by default; on, it adds to a Server-Timing header the app set, on HTTP/1.1 and HTTP/2, without a trace id when untraced', async () => {
    for (const serverTiming of [undefined, true]) {
      for (const http2 of [false, true]) {
        const journey = createJourney({ registry: new Registry(), ...(serverTiming === undefined ? {} : { serverTiming }) })
        const app = Fastify({ http2 } as FastifyServerOptions)
        await app.register(journey.plugin)
        app.get('/db', async (_req, reply) => { reply.header('server-timing', 'db;dur=5;desc="orders"'); return { ok: true } })
        const base = await listenLocal(app)
        try {
          let header: string | string[] | undefined
          if (http2) {
            const session = connect(base)
            header = await new Promise((resolve, reject) => {
              const stream = session.request({ ':path': '/db' })
              stream.on('response', h => { resolve(h['server-timing']) })
              stream.on('error', reject)
              stream.resume()
              stream.end()
            })
            session.close()
          } else {
            const r = await request(`${base}/db`)
            await r.body.text()
            header = r.headers['server-timing']
          }
          const what = `serverTiming ${String(serverTiming)}, ${http2 ? 'HTTP/2' : 'HTTP/1.1'}`
          if (serverTiming === undefined) {
            assert.equal(header, 'db;dur=5;desc="orders"', what)
            continue
          }
          const metrics = parse(header)
          assert.deepEqual(metrics[0], { name: 'db', dur: 5, desc: 'orders' }, what)
          const names = metrics.map(m => m.name)
          // Untraced: no wait before read; HTTP/2 has no read stage at all (docs/stages.md).
          assert.deepEqual(names, http2
            ? ['db', 'accept', 'parse', 'decode', 'handler', 'serialize', 'hooks', ...kernel('accept_kernel_wait')]
            : ['db', 'accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'hooks', ...kernel('accept_kernel_wait')], what)
          assert.ok(metrics.slice(1).every(m => m.dur !== undefined && m.dur >= 0), what)
        } finally {
          await app.close()
          journey.close()
        }
      }
    }
  })
})

test('a function decides per request: the header only for the requests it chooses', async () => {
  const journey = createJourney({ registry: new Registry(), serverTiming: (request) => request.headers['x-debug'] === '1' })
  const app = Fastify()
  await app.register(journey.plugin)
  app.get('/', async () => ({ ok: true }))
  const base = await listenLocal(app)
  try {
    const plain = await request(`${base}/`)
    await plain.body.text()
    assert.equal(plain.headers['server-timing'], undefined, 'not chosen')
    const debug = await request(`${base}/`, { headers: { 'x-debug': '1' } })
    await debug.body.text()
    assert.ok(parse(debug.headers['server-timing']).some(m => m.name === 'handler'), 'chosen')
  } finally {
    await app.close()
    journey.close()
  }
})
