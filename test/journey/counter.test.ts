// The bound-series counter renders what prom-client's own Counter renders, through a real prom-client
// registry, in both formats, and in the JSON that cluster aggregation sums.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AggregatorRegistry, Counter, Registry } from 'prom-client'
import { FastCounter } from '../../src/journey/counter.ts'

test('the same text as a prom-client Counter with the same counts, in the Prometheus and the OpenMetrics format', async () => {
  for (const format of [Registry.PROMETHEUS_CONTENT_TYPE, Registry.OPENMETRICS_CONTENT_TYPE] as const) {
    const ours = new Registry<typeof format>()
    const theirs = new Registry<typeof format>()
    ours.setContentType(format)
    theirs.setContentType(format)
    const fast = new FastCounter({ name: 'x_connections_total', help: 'x', labelNames: ['listener', 'by'], registers: [ours] })
    const own = new Counter({ name: 'x_connections_total', help: 'x', labelNames: ['listener', 'by'] as const, registers: [theirs] })
    const client = fast.series('http', 'client')
    assert.equal(fast.series('http', 'client'), client, 'binding is stable')
    client.inc()
    client.inc(2)
    fast.series('https', 'server') // bound ahead of its first event: exported at 0
    own.inc({ listener: 'http', by: 'client' }, 3)
    own.inc({ listener: 'https', by: 'server' }, 0)
    fast.series('a"b\\c', 'server').inc()
    own.inc({ listener: 'a"b\\c', by: 'server' })
    for (let scrape = 0; scrape < 2; scrape++) { // OpenMetrics renames counters in place at the first scrape
      assert.equal(await ours.metrics(), await theirs.metrics(), `${format}, scrape ${scrape + 1}`)
    }
    if (format === Registry.OPENMETRICS_CONTENT_TYPE) assert.match(await ours.metrics(), /^x_connections_total\{listener="http",by="client"\} 3$/m)
    else assert.match(await ours.metrics(), /^x_connections_total\{listener="https",by="server"\} 0$/m)
  }
})

test('registry.resetMetrics() zeroes bound series in place, and cluster aggregation sums them across workers', async () => {
  const registry = new Registry()
  const c = new FastCounter({ name: 'r_total', help: 'r', labelNames: ['listener'], registers: [registry] })
  const s = c.series('http')
  s.inc(5)
  registry.resetMetrics()
  assert.match(await registry.metrics(), /^r_total\{listener="http"\} 0$/m)
  s.inc() // the series a consumer bound before the reset
  assert.match(await registry.metrics(), /^r_total\{listener="http"\} 1$/m)
  const worker = await registry.getMetricsAsJSON()
  const summed = AggregatorRegistry.aggregate([worker, worker])
  assert.match(await summed.metrics(), /^r_total\{listener="http"\} 2$/m)
})
