// Head sampling from OTEL_* variables, the fast root decision that must agree with the SDK's rule, and a
// client's sampled parent under the journey's plugin.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { propagation, ROOT_CONTEXT } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { AlwaysOnSampler, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney, journeyTracing } from '../../src/journey/index.ts'
import { rootDecider, samplerFromEnv } from '../../src/journey/sampling.ts'

test('samplerFromEnv follows the specification\'s names and falls back to its default', () => {
  assert.match(samplerFromEnv({}).toString(), /ParentBased\{root=AlwaysOnSampler/)
  assert.match(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).toString(), /ParentBased.*TraceIdRatioBased\{0\.25\}/)
  assert.match(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' }).toString(), /TraceIdRatioBased\{1\}/, 'out-of-range argument → 1')
  assert.match(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'bogus' }).toString(), /ParentBased\{root=AlwaysOnSampler/)
})

test('the fast root decision samples the configured share, with ids the SDK\'s ratio sampler also samples', () => {
  const sdk = new TraceIdRatioBasedSampler(0.25)
  const decide = rootDecider(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }))
  assert.ok(decide)
  const n = 40_000
  let sampled = 0
  for (let i = 0; i < n; i++) {
    const id: string | undefined = decide()
    if (id === undefined) continue
    sampled++
    assert.match(id, /^[0-9a-f]{32}$/)
    assert.equal(sdk.shouldSample(ROOT_CONTEXT, id).decision, 2, `${id} is sampled by the SDK's rule too`)
  }
  // Binomial(40000, 0.25): sd ≈ 87, so ±1000 is more than 11 sd: fails only if the rule is wrong.
  assert.ok(Math.abs(sampled - n / 4) < 1000, `sampled ${sampled} of ${n}`)
})

test('always_on always samples, always_off never, and unknown samplers take the generic path', () => {
  const on = rootDecider(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_on' }))!
  const off = rootDecider(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }))!
  for (let i = 0; i < 1000; i++) {
    assert.notEqual(on(), undefined)
    assert.equal(off(), undefined)
  }
  assert.equal(rootDecider(new AlwaysOnSampler()), undefined)
})

test('a client\'s sampled traceparent is traced under the default parent-based sampler whatever the ratio; a sampler that decides remote parents by the ratio too does not trace it', async () => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  const traced: Record<string, string[]> = {}
  try {
    for (const [name, headSampler] of [
      ['default', new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) })],
      ['remote parents by the ratio', new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0), remoteParentSampled: new TraceIdRatioBasedSampler(0) })]
    ] as const) {
      const exporter = new InMemorySpanExporter()
      const tracing = journeyTracing({ headSampler, spanProcessors: [new SimpleSpanProcessor({ exporter })] })
      const provider = new TracerProvider(tracing.sdkOptions)
      const journey = createJourney({ registry: new Registry(), tracing, tracer: provider.getTracer('request-journey') })
      const app = Fastify({ serverFactory: journey.serverFactory() })
      await app.register(journey.plugin)
      app.get('/', async () => 'ok')
      try {
        await app.listen({ port: 0, host: '127.0.0.1' })
        const res = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/`, { headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
        assert.equal(res.status, 200)
        await new Promise(resolve => setTimeout(resolve, 30))
        traced[name] = exporter.getFinishedSpans().filter(s => s.name === 'GET /').map(s => s.spanContext().traceId)
      } finally {
        await app.close()
        await journey.close()
        await provider.shutdown()
      }
    }
  } finally {
    propagation.disable()
  }
  assert.deepEqual(traced, { default: ['0af7651916cd43dd8448eb211c80319c'], 'remote parents by the ratio': [] })
})
