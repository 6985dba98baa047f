// countedMetricExporter (src/journey/metric-pushes.ts) between the SDK's real periodic reader and its real
// in-memory exporter: every push counted by its result, beside a journey in the same registry.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { Registry } from 'prom-client'
import { countedMetricExporter, createJourney, registryMetricProducer } from '../../src/journey/index.ts'

const pushes = async (registry: Registry): Promise<string> =>
  (await registry.metrics()).split('\n').filter(l => l.startsWith('journey_metric_pushes_total')).join('\n')

test('each push is counted by its result, both from 0; the journey beside it neither minds nor takes the counter away', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const inMemory = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter: countedMetricExporter(inMemory, registry), exportIntervalMillis: 3_600_000, metricProducers: [registryMetricProducer(registry)] })
  const provider = new MeterProvider({ readers: [reader] })
  try {
    assert.equal(await pushes(registry), 'journey_metric_pushes_total{result="success"} 0\njourney_metric_pushes_total{result="failure"} 0')
    await reader.forceFlush()
    assert.equal(inMemory.getMetrics().length, 1, 'the push reached the exporter')
    assert.match(await pushes(registry), /result="success"\} 1\n.*result="failure"\} 0$/)
    // The in-memory exporter refuses pushes once shut down: a failed push, as a collector that is down gives.
    await inMemory.shutdown()
    await reader.forceFlush().catch(() => {})
    assert.match(await pushes(registry), /result="success"\} 1\n.*result="failure"\} 1$/)
    journey.close()
    assert.notEqual(await pushes(registry), '', 'closing the journey leaves the counter')
  } finally {
    await provider.shutdown().catch(() => {})
  }
})
