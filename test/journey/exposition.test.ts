// /metrics answers in the format the scraper asks for: OpenMetrics with exemplars to Prometheus, the
// text format to curl, promtool and text-only agents, with every sample named the same in both.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { request } from 'undici'
import { exposition, openMetricsToText, prefersOpenMetrics } from '../../src/journey/index.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

// What Prometheus 2.42 sends when it scrapes (scrape/scrape.go), and what Prometheus 3 sends by default.
const PROMETHEUS_2 = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
const PROMETHEUS_3 = 'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1'

test('OpenMetrics only for a scraper that prefers it', () => {
  for (const accept of [PROMETHEUS_2, PROMETHEUS_3, 'application/openmetrics-text', 'Application/OpenMetrics-Text; version=0.0.1',
    'text/plain;q=0.5, application/openmetrics-text', 'application/openmetrics-text, text/plain']) {
    assert.equal(prefersOpenMetrics(accept), true, accept)
  }
  for (const accept of [undefined, '', '*/*', 'text/plain', 'text/plain;version=0.0.4', 'application/json',
    'application/openmetrics-text;q=0', 'application/openmetrics-text;q=0.2, text/plain', 'application/openmetrics-text;q=0.5, */*',
    'application/openmetrics-text;q=abc', 'application/openmetrics-text;q=2']) {
    assert.equal(prefersOpenMetrics(accept), false, String(accept))
  }
})

function openMetricsRegistry (): Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE> {
  const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  return registry
}

/** The same metrics and observations in `registry`: counters, a gauge, a histogram, awkward label values. */
function populate (registry: Registry<any>): void {
  const openMetrics = registry.contentType === Registry.OPENMETRICS_CONTENT_TYPE
  const requests = new Counter({ name: 'demo_requests_total', help: 'Requests, by "route".\nSecond line.', labelNames: ['route'] as const, registers: [registry] })
  const bare = new Counter({ name: 'demo_events', help: 'A counter registered without _total.', registers: [registry] })
  const open = new Gauge({ name: 'demo_open', help: 'Open things.', registers: [registry] })
  const latency = new Histogram({ name: 'demo_latency_seconds', help: 'Latency.', labelNames: ['route'] as const, buckets: [0.1, 1], registers: [registry], enableExemplars: openMetrics })
  for (const route of ['/a', '/b # {x="y"} 1', 'quote"and\\back\nslash}']) {
    requests.inc({ route }, 2)
    // prom-client's types allow only the metric's own label names on an exemplar.
    if (openMetrics) latency.observe({ labels: { route }, value: 0.5, exemplarLabels: { traceId: 'abc' } as never })
    else latency.observe({ route }, 0.5)
  }
  bare.inc()
  open.set(3)
}

describe('the text form of an OpenMetrics registry', () => {
  test('is what prom-client writes for a text-format registry of the same metrics, exemplars left out', async () => {
    const om = openMetricsRegistry()
    populate(om)
    const first = await om.metrics()
    assert.match(first, /traceId="abc"/, 'the OpenMetrics form has exemplars')
    const text = new Registry()
    populate(text)
    const expected = (await text.metrics()).split('\n').filter(l => l !== '').join('\n') + '\n'
    // demo_events: OpenMetrics names its samples demo_events_total, and so does the text form, so a
    // dashboard reads the same series whichever format Prometheus scraped.
    assert.equal(openMetricsToText(first), expected.replaceAll('demo_events', 'demo_events_total'))
    // Rendering the OpenMetrics registry again (prom-client renamed its counters in place the first time)
    // changes nothing.
    assert.equal(openMetricsToText(await om.metrics()), openMetricsToText(first))
  })

  test('exposition() answers each scraper in its format; a text registry always in text', async () => {
    const om = openMetricsRegistry()
    populate(om)
    const asked = await exposition(om, PROMETHEUS_2)
    assert.equal(asked.contentType, Registry.OPENMETRICS_CONTENT_TYPE)
    assert.match(asked.body, /# EOF\n$/)
    const curl = await exposition(om, '*/*')
    assert.equal(curl.contentType, Registry.PROMETHEUS_CONTENT_TYPE)
    assert.doesNotMatch(curl.body, /# EOF|traceId/)
    const text = new Registry()
    populate(text)
    assert.deepEqual(await exposition(text, PROMETHEUS_2), { contentType: Registry.PROMETHEUS_CONTENT_TYPE, body: await text.metrics() })
  })
})

const PROMTOOL = '/usr/bin/promtool'
// CI installs Prometheus's promtool: there a missing one is a failure. Elsewhere the test says why it skips.
const skip = !existsSync(PROMTOOL) && process.env.CI !== 'true' ? `no ${PROMTOOL} (apt-get install -y prometheus)` : false
if (skip !== false) console.log(`# skipping the promtool check: ${skip}`)

describe('the demo server\'s /metrics', () => {
  let t: TestServer
  before(async () => {
    t = await startTestServer({ OTEL_TRACES_SAMPLER: 'always_on' })
    for (const path of ['/', '/nowhere', '/compute?ms=1']) await (await request(`${t.http}${path}`)).body.dump()
  })
  after(async () => { await t.close() })

  async function scrape (accept?: string): Promise<{ type: string, body: string }> {
    const r = await request(`${t.admin}/metrics`, { headers: accept === undefined ? {} : { accept } })
    return { type: String(r.headers['content-type']), body: await r.body.text() }
  }
  /** Sample names (without labels and values) of the journey's own families. */
  const samples = (body: string): string[] => [...new Set(body.split('\n')
    .filter(l => /^(journey|http_server)_/.test(l)).map(l => l.split(/[{ ]/)[0]!))].sort()

  test('OpenMetrics with exemplars to Prometheus, the text format to curl, the same samples in both', async () => {
    const om = await scrape(PROMETHEUS_2)
    assert.match(om.type, /^application\/openmetrics-text; version=1\.0\.0/)
    assert.match(om.body, /journey_stage_duration_seconds_bucket\{[^}]*\} \d+ # \{traceId="[0-9a-f]{32}"/)
    const text = await scrape()
    assert.match(text.type, /^text\/plain; version=0\.0\.4/)
    assert.doesNotMatch(text.body, / # \{|# EOF/)
    assert.match(text.body, /^# TYPE journey_connections_accepted_total counter$/m)
    assert.deepEqual(samples(text.body), samples(om.body))
    assert.ok(samples(text.body).includes('journey_connections_accepted_total'))
  })

  test('promtool parses the text form and finds nothing wrong with the journey\'s metrics', { skip }, async () => {
    const { body } = await scrape()
    let out: string
    try {
      out = execFileSync(PROMTOOL, ['check', 'metrics'], { input: body, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
    } catch (err) {
      // It exits non-zero for lint problems too; those are judged below. It writes them to stdout.
      const e = err as { stdout: string, stderr: string }
      out = e.stdout + e.stderr
    }
    assert.doesNotMatch(out, /error while linting|parsing error/, out)
    // prom-client's own default metrics have three gauges named *_total; nothing of the journey's may appear.
    const ours = out.split('\n').filter(l => /^(journey|http_server)_/.test(l))
    assert.deepEqual(ours, [])
  })
})
