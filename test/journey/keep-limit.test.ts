// The tail rules' rate limit (keep-limit.ts): the token bucket itself, then a journey whose head sampler
// keeps nothing, hit by a storm of failing requests — each rule keeps its limit a second, the rest are
// counted, and every request is still in the metrics.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AlwaysOffSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { checkKeepLimit, keepLimiter } from '../../src/journey/keep-limit.ts'

test('a limiter keeps a second\'s worth at once, then as many a second as it is given', () => {
  const allowed = keepLimiter(10)
  const kept = (at: number): number => { let n = 0; while (allowed(at)) n++; return n }
  assert.equal(kept(1000), 10, 'a burst after a quiet spell: one second\'s worth')
  assert.equal(kept(1100), 1, '100 ms later: one more')
  assert.equal(kept(1150), 0, 'half a keep is none')
  assert.equal(kept(1200), 1, 'the half before counts')
  assert.equal(kept(60_000), 10, 'never more than a second\'s worth, however long the quiet')
  assert.equal(kept(59_000), 0, 'an earlier end adds nothing')
  const slow = keepLimiter(0.5)
  assert.equal(slow(0), true, 'below one a second: one at a time')
  assert.equal(slow(1000), false)
  assert.equal(slow(2000), true, 'two seconds later')
  const none = keepLimiter(0)
  assert.equal(none(0), false, '0 a second keeps none')
  assert.equal(none(10_000_000), false)
  const all = keepLimiter(Infinity)
  for (let i = 0; i < 1000; i++) assert.equal(all(0), true)
})

test('a limit that is no number of keeps a second is refused, saying what it takes', () => {
  assert.equal(checkKeepLimit(0), 0)
  assert.equal(checkKeepLimit(Infinity), Infinity)
  for (const bad of [-1, Number.NaN, -Infinity]) assert.throws(() => checkKeepLimit(bad), /keepLimitPerSecond must be a number ≥ 0/)
})

test('a storm of failing requests: the error rule keeps its limit a second, the rest are counted, and a slow request is still kept', async () => {
  const exporter = new InMemorySpanExporter()
  const tracing = journeyTracing({ headSampler: new AlwaysOffSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const provider = new TracerProvider(tracing.sdkOptions)
  const registry = new Registry()
  const journey = createJourney({ registry, tracing, tracer: provider.getTracer('request-journey'), keepLimitPerSecond: 5, slowThresholdMs: 50 })
  const app = Fastify({ serverFactory: journey.serverFactory() })
  await app.register(journey.plugin)
  app.get('/boom', async () => { throw new Error('the database is down') })
  app.get('/slow', async () => { await new Promise(resolve => setTimeout(resolve, 60)); return 'slow' })
  try {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
    const began = performance.now()
    for (let i = 0; i < 30; i++) assert.equal((await fetch(`${base}/boom`)).status, 500)
    const seconds = (performance.now() - began) / 1000
    assert.equal((await fetch(`${base}/slow`)).status, 200)
    await new Promise(resolve => setTimeout(resolve, 50))
    const roots = (rule: string): number => exporter.getFinishedSpans().filter(s => s.attributes['journey.sampling.rule'] === rule && s.name.startsWith('GET')).length
    const text = await registry.metrics()
    const limited = Number(/journey_traces_rate_limited_total\{rule="error"\} (\d+)/.exec(text)?.[1])
    const kept = roots('error')
    assert.ok(kept >= 5 && kept <= 5 + Math.ceil(seconds * 5), `${kept} kept in ${seconds.toFixed(2)} s at 5 a second, after a burst of 5`)
    assert.equal(kept + limited, 30, `kept ${kept} and counted ${limited}: every failing request is one or the other`)
    assert.match(text, /http_server_request_duration_seconds_count\{[^}]*error_type="500"[^}]*\} 30/, 'every one is in the metrics')
    assert.equal(roots('slow'), 1, 'the slow rule has a limit of its own')
    assert.match(text, /journey_traces_rate_limited_total\{rule="slow"\} 0/, 'both series from 0')
  } finally {
    await app.close()
    await journey.close()
    await provider.shutdown()
  }
})
