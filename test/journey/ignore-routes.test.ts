// ignoreRoutes: the routes a team does not want among its requests (the scrape of /metrics served by the
// app itself, a load balancer's or Kubernetes' probe) reach no consumer — no histogram, span or
// Server-Timing — while the requests around them, on the same connection too, are measured as before.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from 'node:http2'
import type { FastifyServerOptions } from 'fastify'
import { Pool } from 'undici'
import { h2 } from '../helpers/h2.ts'
import { tracedJourney, type TracedJourney } from '../helpers/traced.ts'
import { journeyWarnings } from '../helpers/warnings.ts'

const IGNORED = ['/metrics', '/healthz', '/v1/ping']
const warnings = journeyWarnings()
let t: TracedJourney
let pool: Pool

before(async () => {
  t = tracedJourney({ journey: { ignoreRoutes: [...IGNORED, '/ping', '/health'], serverTiming: true } }) // two mistakes: said
  await t.app.register(t.journey.plugin)
  t.app.get('/metrics', async () => 'scrape')
  t.app.get('/healthz', async () => 'ok')
  t.app.get('/work', async () => 'done')
  await t.app.register(async (v1) => { v1.get('/ping', async () => 'pong') }, { prefix: '/v1' })
  const port = await t.listen()
  pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 }) // one connection: ignored and measured requests share it
})
after(async () => { await pool.close(); await t.close() })

async function send (path: string, method: 'GET' | 'HEAD' = 'GET'): Promise<string | undefined> {
  const r = await pool.request({ path, method })
  await r.body.text()
  assert.equal(r.statusCode, 200)
  return r.headers['server-timing'] as string | undefined
}

test('ignored routes (a prefixed one and HEAD twins included) reach no consumer; a request after them on the same connection is measured', async () => {
  const timings = new Map<string, string | undefined>()
  for (const path of ['/healthz', '/metrics', '/v1/ping', '/work']) timings.set(path, await send(path)) // /healthz first: the connection's first request
  timings.set('HEAD /healthz', await send('/healthz', 'HEAD')) // (undici does not reuse a connection after a HEAD)
  await sleep(20)

  for (const [what, value] of timings) {
    if (what === '/work') assert.match(value ?? '', /read;dur=.*traceparent/, 'a measured request gets its Server-Timing')
    else assert.equal(value, undefined, `${what}: no Server-Timing`)
  }
  const names = t.spans.getFinishedSpans().map(s => s.name)
  assert.ok(names.includes('GET /work') && names.includes('journey.handler'), names.join(', '))
  for (const route of IGNORED) assert.ok(!names.some(n => n.endsWith(` ${route}`)), `no span for ${route}: ${names.join(', ')}`)

  const text = await t.registry.metrics()
  for (const route of IGNORED) assert.doesNotMatch(text, new RegExp(`route="${route}"|http_route="${route}"`), `no series for ${route}`)
  assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/work",http_response_status_code="200"[^}]*\} 1/)
  assert.match(text, /journey_stage_duration_seconds_count\{stage="handler",method="GET",route="\/work"\} 1/)
  // The accept stage belonged to the connection's first request, /healthz: not observed with it.
  const connections = /journey_connections_accepted_total\{listener="http"\} (\d+)/.exec(text)?.[1]
  assert.ok(Number(connections) >= 1, 'the connections themselves are counted')
  assert.doesNotMatch(text, /journey_stage_duration_seconds_count\{stage="accept"/, 'the accept stage went with its first request, /healthz')
})

test('templates no route has (a missing prefix, a typo) are said once the app is ready, by name', () => {
  assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_IGNORE_UNKNOWN'])
  assert.match(warnings[0]!.message, /ignoreRoutes names \/ping, \/health, which no route added after the journey plugin has/)
})

test('on HTTP/2 (h2c), where a request is a stream and ends at its close: the same', async (t) => {
  const h = tracedJourney({ fastify: { http2: true } as FastifyServerOptions, journey: { ignoreRoutes: ['/healthz'] } })
  t.after(() => h.close())
  await h.app.register(h.journey.plugin)
  h.app.get('/healthz', async () => 'ok')
  h.app.get('/work', async () => 'done')
  const port = await h.listen()
  const session = connect(`http://127.0.0.1:${port}`)
  try {
    assert.equal(await h2(session, '/healthz'), 200)
    assert.equal(await h2(session, '/work'), 200)
    assert.equal(await h2(session, '/healthz'), 200)
  } finally {
    session.close()
  }
  await sleep(50)
  const text = await h.registry.metrics()
  assert.doesNotMatch(text, /route="\/healthz"/)
  assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/work",http_response_status_code="200",url_scheme="http",network_protocol_version="2"\} 1/)
  const names = h.spans.getFinishedSpans().map(s => s.name)
  assert.ok(names.includes('GET /work') && !names.includes('GET /healthz'), names.join(', '))
})
