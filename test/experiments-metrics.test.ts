// The experiments' arithmetic on scraped metrics, on a cluster's scrape: every worker exports its own series.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { delta, parseMetrics, sharedDelta } from '../experiments/lib/metrics.ts'

// As a cluster-shared primary merges its two workers' scrapes: the namespace's TcpExt counter once per worker.
const scrape = (overflows: number, accepted1: number, accepted2: number): ReturnType<typeof parseMetrics> => parseMetrics([
  `journey_listen_overflows_total{worker="2"} ${overflows}`,
  `journey_listen_overflows_total{worker="1"} ${overflows}`,
  `journey_connections_accepted_total{listener="http",worker="1"} ${accepted1}`,
  `journey_connections_accepted_total{listener="http",worker="2"} ${accepted2}`
].join('\n'))

test('a counter every worker reads from the namespace grew once, however many workers report it', () => {
  const before = scrape(7165, 10, 20)
  const after = scrape(7502, 110, 70)
  assert.equal(sharedDelta(before, after, 'journey_listen_overflows_total'), 337)
  // Counters of each worker's own are added up, as before.
  assert.equal(delta(before, after, 'journey_connections_accepted_total', { listener: 'http' }), 150)
})

test('a series first seen after the start grew from 0; a name nobody exports grew by 0', () => {
  const before = parseMetrics('')
  const after = parseMetrics('journey_listen_overflows_total 4\n')
  assert.equal(sharedDelta(before, after, 'journey_listen_overflows_total'), 4)
  assert.equal(sharedDelta(before, after, 'journey_listen_drops_total'), 0)
})
