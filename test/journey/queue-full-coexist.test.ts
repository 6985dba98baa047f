// queue-full.test.ts, under @opentelemetry/instrumentation-http: when the export queue has no room at a
// request's start, the journey runs the handler untraced under the http instrumentation's own (sampled)
// server span, the outer parent here rather than an incoming traceparent. Its handler's spans are not
// recorded; downstream calls still carry that span's trace id, flagged not sampled; the journey adds no
// span of its own, and the http span is left as the http instrumentation made it.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { context, propagation, SpanKind, trace } from '@opentelemetry/api'
import type { NodeSDK } from '@opentelemetry/sdk-node'
import { AlwaysOnSampler, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor } from '@opentelemetry/sdk-trace'
import type { FastifyInstance } from 'fastify'
import { request } from 'undici'
import { fakeQueue, journeyUnderHttpInstrumentation } from '../helpers/app.ts'

const exporter = new InMemorySpanExporter()
const { queue, admission } = fakeQueue(100)
let sdk: NodeSDK
let app: FastifyInstance
let base: string
let propagated: Record<string, string> = {}

before(async () => {
  ({ sdk, app, base } = await journeyUnderHttpInstrumentation({
    headSampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [Object.assign(new SimpleSpanProcessor({ exporter }), admission)]
  }, app => {
    app.get('/work', async () => {
      await new Promise(resolve => setImmediate(resolve))
      return trace.getTracer('app').startActiveSpan('db.query', (span) => {
        propagated = {}
        propagation.inject(context.active(), propagated) // what a downstream call would carry
        span.end()
        return 'done'
      })
    })
  }))
  await get() // the app's first span: from now on the journey gives every handler a context
})
after(async () => { await app.close(); await sdk.shutdown() })
beforeEach(() => { exporter.reset(); queue.room = 100 })

async function get (): Promise<void> {
  const r = await request(base + '/work')
  assert.equal(r.statusCode, 200)
  await r.body.text()
  await sleep(20)
}

const httpSpans = (): ReturnType<InMemorySpanExporter['getFinishedSpans']> =>
  exporter.getFinishedSpans().filter(s => s.kind === SpanKind.SERVER && s.instrumentationScope.name.includes('instrumentation-http'))

test('with room: one trace, the http span above the journey\'s request span and the handler\'s span', async () => {
  await get()
  const [http] = httpSpans()
  assert.ok(http !== undefined)
  const spans = exporter.getFinishedSpans()
  const db = spans.find(s => s.name === 'db.query')
  assert.equal(db?.spanContext().traceId, http.spanContext().traceId)
  assert.ok(spans.some(s => s.name === 'GET /work' && s.parentSpanContext?.spanId === http.spanContext().spanId))
  assert.match(propagated.traceparent ?? '', new RegExp(`^00-${http.spanContext().traceId}-[0-9a-f]{16}-01$`))
})

test('queue full at its start: nothing recorded below the http span, and downstream calls carry its trace id, not sampled', async () => {
  queue.room = 0
  await get()
  const [http] = httpSpans()
  assert.ok(http !== undefined, 'the http instrumentation\'s own span is not the journey\'s to refuse')
  assert.deepEqual(exporter.getFinishedSpans().filter(s => s !== http).map(s => s.name), [], 'no journey span, no handler span')
  assert.match(propagated.traceparent ?? '', new RegExp(`^00-${http.spanContext().traceId}-[0-9a-f]{16}-00$`),
    'the outer trace id goes on downstream, flagged not sampled')
  assert.equal(queue.room, 0, 'no room taken or left held')
})
