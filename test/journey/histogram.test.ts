// The bound-series histogram renders exactly what Prometheus expects, through a real prom-client registry.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { FastHistogram } from '../../src/journey/histogram.ts'

test('le buckets are cumulative and inclusive; sum, count and exemplars are rendered', async () => {
  const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const h = new FastHistogram({ name: 'x_seconds', help: 'x', labelNames: ['route'], buckets: [0.1, 1], registers: [registry] })
  const s = h.series('/a')
  assert.equal(h.series('/a'), s, 'binding is stable')
  s.observe(0.1) // on the bound: counts in le="0.1"
  s.observe(0.5)
  s.observeWithExemplar(5, { traceId: 'abc', spanId: 'def' }, Date.now() / 1000)
  const text = await registry.metrics()
  assert.match(text, /^x_seconds_bucket\{le="0.1",route="\/a"\} 1$/m)
  assert.match(text, /^x_seconds_bucket\{le="1",route="\/a"\} 2$/m)
  assert.match(text, /^x_seconds_bucket\{le="\+Inf",route="\/a"\} 3 # \{traceId="abc",spanId="def"\} 5 \d+(\.\d+)?$/m)
  assert.match(text, /^x_seconds_sum\{route="\/a"\} 5.6$/m)
  assert.match(text, /^x_seconds_count\{route="\/a"\} 3$/m)
  assert.match(text, /# TYPE x_seconds histogram/)
})

test('on a classic Prometheus registry the same data renders without exemplars', async () => {
  const registry = new Registry()
  const h = new FastHistogram({ name: 'y_seconds', help: 'y', labelNames: [], buckets: [1], registers: [registry] })
  h.series().observeWithExemplar(0.5, { traceId: 'abc', spanId: 'def' }, Date.now() / 1000)
  const text = await registry.metrics()
  assert.match(text, /^y_seconds_bucket\{le="1"\} 1$/m)
  assert.doesNotMatch(text, /traceId/)
})

test('label values are escaped once per series and stay escaped on every line', async () => {
  const registry = new Registry()
  const h = new FastHistogram({ name: 'z_seconds', help: 'z', labelNames: ['route'], buckets: [1], registers: [registry] })
  h.series('/a"b\\c').observe(2)
  for (let i = 0; i < 2; i++) { // the second scrape reads the cached label text
    const text = await registry.metrics()
    assert.match(text, /^z_seconds_bucket\{le="\+Inf",route="\/a\\"b\\\\c"\} 1$/m)
    assert.match(text, /^z_seconds_count\{route="\/a\\"b\\\\c"\} 1$/m)
  }
})

test('as JSON (getMetricsAsJSON, cluster aggregation) every value carries its full label set', async () => {
  const registry = new Registry()
  const h = new FastHistogram({ name: 'j_seconds', help: 'j', labelNames: ['route'], buckets: [1], registers: [registry] })
  h.series('/a').observe(0.5)
  h.series('/b').observe(2)
  const [metric] = await registry.getMetricsAsJSON()
  const values = metric!.values as Array<{ metricName: string, labels: Record<string, string | number>, value: number }>
  assert.deepEqual(values.filter(v => v.metricName === 'j_seconds_bucket').map(v => v.labels), [
    { route: '/a', le: 1 }, { route: '/a', le: '+Inf' }, { route: '/b', le: 1 }, { route: '/b', le: '+Inf' }
  ])
  assert.deepEqual(values.filter(v => v.metricName === 'j_seconds_count').map(v => [v.labels, v.value]), [[{ route: '/a' }, 1], [{ route: '/b' }, 1]])
})

test('registry.resetMetrics() zeroes bound series in place: they go on counting where scrapes look', async () => {
  const registry = new Registry()
  const h = new FastHistogram({ name: 'r_seconds', help: 'r', labelNames: ['route'], buckets: [1], registers: [registry] })
  const s = h.series('/a')
  s.observeWithExemplar(0.5, { traceId: 'abc', spanId: 'def' }, Date.now() / 1000)
  s.observe(2)
  registry.resetMetrics()
  let text = await registry.metrics()
  assert.match(text, /^r_seconds_count\{route="\/a"\} 0$/m)
  assert.match(text, /^r_seconds_sum\{route="\/a"\} 0$/m)
  assert.equal(s.exemplars.filter(e => e !== undefined).length, 0)
  s.observe(0.5) // the series a consumer bound before the reset
  text = await registry.metrics()
  assert.match(text, /^r_seconds_bucket\{le="1",route="\/a"\} 1$/m)
  assert.match(text, /^r_seconds_count\{route="\/a"\} 1$/m)
})
