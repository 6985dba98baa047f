// The counted export pipeline (src/journey/span-pipeline.ts) around the SDK's real BatchSpanProcessor and real
// spans from a TracerProvider: batches go out concurrently up to the limit and never beyond it, a flush
// waits for every send, and failures of batches the processor was already told about still surface.
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import { ExportResultCode, setGlobalErrorHandler, type ExportResult } from '@opentelemetry/core'
import { TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace'
import { Registry } from 'prom-client'
import { countedBatchProcessor, createJourney, EXPORT_METRIC } from '../../src/journey/index.ts'

/** An exporter whose sends finish when the test says so, recording how many overlapped. */
function gatedExporter (): SpanExporter & { sends: Array<{ spans: number, finish: (ok: boolean) => void }>, maxOverlap: number, flushes: number } {
  let open = 0
  const e = {
    sends: [] as Array<{ spans: number, finish: (ok: boolean) => void }>,
    maxOverlap: 0,
    flushes: 0,
    export (spans: ReadableSpan[], done: (r: ExportResult) => void) {
      open++
      e.maxOverlap = Math.max(e.maxOverlap, open)
      let finished = false
      e.sends.push({
        spans: spans.length,
        finish: (ok) => {
          if (finished) return
          finished = true
          open--
          done(ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error('collector said no') })
        }
      })
    },
    // Like the OTLP exporters: a flush ends when every send has.
    async forceFlush () {
      e.flushes++
      while (open > 0) await new Promise(resolve => setImmediate(resolve))
    },
    async shutdown () { await e.forceFlush() }
  }
  return e
}

/** A pipeline over a gated exporter: a queue of 100 in batches of 10, or with `defaults` only what must be given. */
function setup (maxConcurrentExports: number | 'defaults'): { exporter: ReturnType<typeof gatedExporter>, end: (n: number) => void, registry: Registry, processor: ReturnType<typeof countedBatchProcessor> } {
  const exporter = gatedExporter()
  const registry = new Registry()
  const processor = maxConcurrentExports === 'defaults'
    ? countedBatchProcessor({ exporter, registry })
    : countedBatchProcessor({ exporter, registry, maxQueueSize: 100, maxExportBatchSize: 10, scheduledDelayMillis: 60_000, exportTimeoutMillis: 30_000, maxConcurrentExports })
  const tracer = new TracerProvider({ spanProcessors: [processor] }).getTracer('t')
  started.push({ exporter, processor })
  return { exporter, registry, processor, end: (n) => { for (let i = 0; i < n; i++) tracer.startSpan('s').end() } }
}
const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

// Every test leaves sends open on purpose. The SDK's processor holds a timer for each open send (its export
// timeout, not unref'd), so without this the file lingered for minutes after its last test.
const started: Array<{ exporter: ReturnType<typeof gatedExporter>, processor: ReturnType<typeof countedBatchProcessor> }> = []
afterEach(async () => {
  for (const { exporter, processor } of started.splice(0)) {
    let down = false
    const shutdown = processor.shutdown().finally(() => { down = true })
    for (let i = 0; i < 100 && !down; i++) {
      for (const s of exporter.sends) s.finish(true)
      await tick()
    }
    await shutdown
  }
})
const metric = async (r: Registry, name: string): Promise<string> => (await r.metrics()).split('\n').filter(l => l.startsWith(name)).join('\n')

test('before any export, both results and the drops are exported at 0, so the first of each is an increase Prometheus sees', async () => {
  const { registry } = setup(1)
  assert.equal(await metric(registry, 'journey_spans_exported_total'), 'journey_spans_exported_total{result="success"} 0\njourney_spans_exported_total{result="failure"} 0')
  assert.equal(await metric(registry, 'journey_spans_dropped_total'), 'journey_spans_dropped_total 0')
})

test('full batches go out while earlier ones are still in flight, up to the limit and never beyond it', async () => {
  const { exporter, end } = setup(3)
  end(50) // five full batches
  await tick()
  assert.equal(exporter.sends.length, 3, 'three batches in flight at once')
  assert.equal(exporter.maxOverlap, 3)
  exporter.sends[0]!.finish(true)
  await tick()
  assert.equal(exporter.sends.length, 4, 'one finished, the next one goes')
  for (const s of exporter.sends) s.finish(true)
  await tick()
  assert.equal(exporter.sends.length, 5)
  assert.ok(exporter.maxOverlap <= 3, `never more than 3 in flight (saw ${exporter.maxOverlap})`)
})

test('a limit of 1 is the BatchSpanProcessor alone: one batch per round trip', async () => {
  const { exporter, end } = setup(1)
  end(30)
  await tick()
  assert.equal(exporter.sends.length, 1)
  exporter.sends[0]!.finish(true)
  await tick()
  assert.equal(exporter.sends.length, 2)
  assert.equal(exporter.maxOverlap, 1)
})

test('with only an exporter and a registry, it is the SDK\'s processor as it comes: 2048 spans at most, batches of 512, one in flight', async () => {
  const { exporter, end, registry } = setup('defaults')
  end(2100)
  await tick()
  assert.deepEqual(exporter.sends.map(s => s.spans), [512], 'one full batch out, the rest wait for it')
  assert.match(await metric(registry, 'journey_spans_dropped_total'), / 52$/m, 'the 52 spans past 2048')
  exporter.sends[0]!.finish(true)
  await tick()
  assert.deepEqual(exporter.sends.map(s => s.spans), [512, 512])
  assert.equal(exporter.maxOverlap, 1)
})

test('forceFlush ends only when every send has, and rejects when a batch it was answered early for fails', async () => {
  const { exporter, end, processor, registry } = setup(4)
  end(25) // two full batches go at once; five spans wait for the flush
  await tick()
  assert.equal(exporter.sends.length, 2)
  // In an object: the callbacks below change it where the compiler's narrowing cannot see.
  type State = 'pending' | 'resolved' | Error
  const flush: { state: State } = { state: 'pending' }
  processor.forceFlush().then(() => { flush.state = 'resolved' }, (err: Error) => { flush.state = err })
  await tick(); await tick()
  assert.equal(exporter.sends.length, 3, 'the partial batch goes out at the flush')
  assert.equal(flush.state, 'pending', 'still sending')
  exporter.sends[0]!.finish(true)
  exporter.sends[2]!.finish(true)
  await tick(); await tick()
  assert.equal(flush.state, 'pending', 'one send is still open')
  exporter.sends[1]!.finish(false)
  for (let i = 0; i < 5 && flush.state === 'pending'; i++) await tick()
  const result = flush.state as State // assert.equal above narrowed it to 'pending'
  assert.ok(result instanceof Error && /collector said no/.test(result.message), `the flush rejects with the failure (${String(result)})`)
  assert.match(await metric(registry, 'journey_spans_exported_total'), /result="success"} 15\n.*result="failure"} 10/s)
  assert.match(await metric(registry, 'journey_spans_pending'), / 0$/m)
})

test('outside a flush, a failure of a batch answered early goes to the global error handler, once', async () => {
  const errors: unknown[] = []
  setGlobalErrorHandler(err => errors.push(err))
  try {
    const { exporter, end } = setup(4)
    end(10)
    await tick()
    exporter.sends[0]!.finish(false)
    await tick()
    assert.equal(errors.length, 1)
    assert.match(String((errors[0] as Error).message), /collector said no/)
  } finally {
    setGlobalErrorHandler(() => {})
  }
})

test('the queue bounds spans queued and in flight together: the rest are counted as dropped', async () => {
  const { exporter, end, registry } = setup(8)
  end(150)
  await tick()
  assert.equal(exporter.sends.reduce((n, s) => n + s.spans, 0), 80, 'eight batches of ten in flight')
  assert.match(await metric(registry, 'journey_spans_dropped_total'), / 50$/m)
  assert.match(await metric(registry, 'journey_spans_pending'), / 100$/m)
})

test('admit: room for a whole trace is checked before its spans are built, and a refused trace counts as dropped', async () => {
  const { exporter, end, registry, processor } = setup(1)
  end(95) // one batch of ten in flight, 85 queued: 95 of 100
  await tick()
  assert.equal(processor.admit(5), true, 'five more fit')
  assert.equal(processor.admit(6), false, 'six do not')
  assert.match(await metric(registry, 'journey_spans_dropped_total'), / 6$/m)
  exporter.sends[0]!.finish(true)
  await tick()
  assert.equal(processor.admit(6), true, 'room again once a batch has gone')
})

test('reserve: room held for running requests counts against the bound until released; a refused reservation drops nothing', async () => {
  const { exporter, end, registry, processor } = setup(8)
  assert.equal(processor.reserve!(60), true)
  assert.match(await metric(registry, 'journey_spans_reserved'), / 60$/m, 'the held room is visible')
  assert.equal(processor.reserve!(50), false, '60 held + 50 > 100')
  assert.match(await metric(registry, 'journey_spans_dropped_total'), / 0$/m, 'refusing a reservation is not a drop')
  assert.equal(processor.admit(41), false, 'kept requests compete with the held room')
  end(45) // other spans (a handler's, say) too: 40 fit beside the 60 held
  await tick()
  assert.equal(exporter.sends.reduce((n, s) => n + s.spans, 0), 40)
  assert.match(await metric(registry, 'journey_spans_dropped_total'), / 46$/m, '41 refused by admit, 5 at onEnd')
  processor.release!(60)
  assert.match(await metric(registry, 'journey_spans_reserved'), / 0$/m)
  for (const s of exporter.sends) s.finish(true)
  await tick()
  assert.equal(processor.admit(100), true, 'all of it free again')
})

test('a journey shares the registry with it: createJourney takes a registry the pipeline is in, and closing the journey leaves its series', async () => {
  const { registry } = setup(1)
  const journey = createJourney({ registry })
  assert.ok(registry.getSingleMetric('journey_stage_duration_seconds') !== undefined, 'the journey\'s metrics are there too')
  journey.close()
  assert.equal(registry.getSingleMetric('journey_stage_duration_seconds'), undefined, 'the journey took its own out')
  const spanSeries = Object.values(EXPORT_METRIC).filter(name => name.startsWith('journey_spans_'))
  assert.equal(spanSeries.length, 4)
  for (const name of spanSeries) assert.ok(registry.getSingleMetric(name) !== undefined, `${name} stays`)
})
