// HTTP/1.1 pipelining: Node answers in order, so a response ready early waits for the one before it on its
// connection. That wait is not writing: the write stage starts when the response gets the socket, the wait
// is the request span's journey.gap.pipelined_ms, and journey.write.bytes counts the response's own bytes.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'
import { connect, responses } from '../helpers/raw.ts'
import { sample, scrape } from '../../experiments/lib/metrics.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { durationMs, ms, roots, stage, stageNames, waterfall, type Waterfall } from '../helpers/spans.ts'

let t: TestServer
before(async () => { t = await startTestServer() })
after(async () => { await t.close() })
beforeEach(() => { t.exporter.reset() })

const SLOW_MS = 200
const pipelined = `GET /io?ms=${SLOW_MS} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`

function twoRequests (spans: ReadableSpan[]): [Waterfall, Waterfall] {
  const slow = roots(spans, '/io')
  const fast = roots(spans, '/')
  assert.equal(slow.length, 1)
  assert.equal(fast.length, 1)
  return [waterfall(spans, slow[0]!), waterfall(spans, fast[0]!)]
}

test('a response held back behind a slow one: its write starts when it gets the socket, the wait is journey.gap.pipelined_ms', async () => {
  const c = await connect(t.server.ports.http)
  await c.write(pipelined)
  const text = await c.read(responses(2), 5000)
  c.close()
  const second = text.slice(text.indexOf('HTTP/1.1', 1))
  const spans = await t.spansWhere(s => roots(s).length === 2)
  const [slow, fast] = twoRequests(spans)

  const write = stage(fast, 'write')!
  assert.ok(durationMs(write) < SLOW_MS / 4, `the fast request's write is its own (${durationMs(write).toFixed(2)} ms), not the wait for the slow one`)
  assert.ok(ms(write.startTime) >= ms(stage(slow, 'handler')!.endTime), 'it starts once the slow response is out')
  const held = fast.root.attributes['journey.gap.pipelined_ms'] as number
  assert.ok(held > SLOW_MS * 0.75, `the wait is reported as a gap (${held} ms)`)
  assert.equal(slow.root.attributes['journey.gap.pipelined_ms'], undefined, 'the first response waited for nothing')
  // Stages plus gaps are the span, as for every request.
  const gaps = ['journey.gap.before_request_ms', 'journey.gap.hooks_ms', 'journey.gap.pipelined_ms'].reduce((n, k) => n + ((fast.root.attributes[k] as number | undefined) ?? 0), 0)
  const covered = fast.stages.reduce((n, s) => n + durationMs(s), 0)
  assert.ok(Math.abs(covered + gaps - durationMs(fast.root)) < 0.01, `stages ${covered} + gaps ${gaps} = span ${durationMs(fast.root)}`)
  // Bytes: each response its own.
  assert.equal(stage(fast, 'write')!.attributes['journey.write.bytes'], Buffer.byteLength(second, 'latin1'))
  assert.equal(stage(slow, 'write')!.attributes['journey.write.bytes'], Buffer.byteLength(text, 'latin1') - Buffer.byteLength(second, 'latin1'))

  // The write histogram means writing too: the fast route's write never took as long as the wait.
  const metrics = await scrape(`${t.admin}/metrics`)
  const bucket = (le: string): number => sample(metrics, 'journey_stage_duration_seconds_bucket', { le, stage: 'write', method: 'GET', route: '/' })
  assert.ok(bucket('0.1') >= 1 && bucket('0.1') === bucket('+Inf'), `no write of GET / counted at ≥ 100 ms (${bucket('0.1')} of ${bucket('+Inf')})`)
  // The wait has a histogram of its own, observed only for responses that waited.
  const gap = { gap: 'pipelined', method: 'GET', route: '/' }
  assert.equal(sample(metrics, 'journey_gap_duration_seconds_count', gap), 1)
  assert.ok(Math.abs(sample(metrics, 'journey_gap_duration_seconds_sum', gap) * 1000 - held) < 1e-6, 'the span\'s gap, in seconds')
  assert.ok(Number.isNaN(sample(metrics, 'journey_gap_duration_seconds_count', { ...gap, route: '/io' })), 'the first response waited for nothing')
})

test('a held-back response whose connection closes first wrote nothing: no write stage, the wait is the gap', async () => {
  const c = await connect(t.server.ports.http)
  await c.write(pipelined)
  await new Promise(resolve => setTimeout(resolve, SLOW_MS / 4))
  c.close()
  const spans = await t.spansWhere(s => roots(s).length === 2)
  const [, fast] = twoRequests(spans)
  assert.equal(fast.root.attributes['journey.aborted'], true)
  assert.deepEqual(stageNames(fast).slice(-2), ['handler', 'serialize'], 'its response never got the socket')
  assert.ok((fast.root.attributes['journey.gap.pipelined_ms'] as number) > SLOW_MS / 8)
})

test('eight pipelined requests of mixed speed: the bytes of their write stages add up to what the client read', async () => {
  const paths = ['/io?ms=30', '/', '/io?ms=5', '/', '/', '/io?ms=20', '/io?ms=0', '/']
  const c = await connect(t.server.ports.http)
  await c.write(paths.map(p => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''))
  const text = await c.read(responses(paths.length), 5000)
  c.close()
  const spans = await t.spansWhere(s => roots(s).length === paths.length)
  const written = roots(spans).map(r => stage(waterfall(spans, r), 'write')!.attributes['journey.write.bytes'] as number)
  assert.equal(written.reduce((a, b) => a + b, 0), Buffer.byteLength(text, 'latin1'), `per response: ${written.join(', ')}`)
  const held = roots(spans).filter(r => r.attributes['journey.gap.pipelined_ms'] !== undefined)
  assert.ok(held.length >= 4, `the fast ones behind a slower one waited (${held.length} of ${paths.length})`)
})
