// Head sampling from OTEL_* variables, and the fast root decision that must agree with the SDK's rule.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ROOT_CONTEXT } from '@opentelemetry/api'
import { AlwaysOnSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace'
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
