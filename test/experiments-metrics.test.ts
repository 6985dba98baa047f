// The experiments' arithmetic on scraped metrics, on a cluster's scrape: every worker exports its own series.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { QueuePeaks } from '../experiments/accept.ts'
import { delta, most, parseMetrics, sharedDelta } from '../experiments/lib/metrics.ts'

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

test('a per-process figure of a cluster is its worst worker\'s, not the workers\' sum', () => {
  const m = parseMetrics('nodejs_eventloop_lag_p99_seconds{worker="1"} 0.012\nnodejs_eventloop_lag_p99_seconds{worker="2"} 0.045\n')
  assert.equal(most(m, 'nodejs_eventloop_lag_p99_seconds'), 0.045)
  assert.ok(Number.isNaN(most(m, 'nodejs_eventloop_lag_p50_seconds')))
})

test('the accept experiment\'s queue column: one queue read by two workers (shared, or the primary\'s) is one queue, not their sum', () => {
  const polls = [
    'journey_accept_queue_peak{listener="http",worker="1"} 40\njourney_accept_queue_peak{listener="http",worker="2"} 38\njourney_accept_queue_peak{listener="https",worker="1"} 90',
    'journey_accept_queue_peak{listener="http",worker="1"} 12\njourney_accept_queue_peak{listener="http",worker="2"} 39'
  ].map(parseMetrics)
  const peaks = new QueuePeaks()
  for (const m of polls) peaks.add(m)
  assert.equal(peaks.render('cluster-shared', ['1', '2']), '40', 'the deepest reading of the one queue')
  assert.equal(peaks.render('reuseport', ['2', '1']), '39 / 40', 'a queue per worker, deepest each, in the accepted column\'s order')
  assert.equal(peaks.render('cluster-rr', ['1', '2']), '40', 'round-robin workers read the primary\'s one queue')
  assert.equal(new QueuePeaks().render('cluster-rr', ['1', '2']), '—', 'no worker reported a queue: not 0')
  const single = new QueuePeaks()
  single.add(parseMetrics('journey_accept_queue_peak{listener="http"} 63\njourney_accept_queue_peak{listener="https"} 2'))
  assert.equal(single.render('single', []), '63', 'the HTTP listener only')
})
