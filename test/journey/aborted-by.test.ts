// Who cut an aborted request off. "Aborted" alone reads as "the client left", but a server can cut a
// request too: a socket timeout (Fastify's connectionTimeout, server.timeout), its shutdown deadline. The
// side that closed the connection first says which, on the request span (journey.aborted_by), the page
// and the demo's log line.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { roots } from '../helpers/spans.ts'
import { tracedJourney } from '../helpers/traced.ts'
import { connect } from '../helpers/raw.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { fragments } from '../../src/journey/page.ts'

const t = tracedJourney()
after(() => t.close())
await t.app.register(t.journey.plugin)
t.app.get('/slow', async () => { await sleep(1000); return 'late' })
const port = await t.listen()
void t.journey.recent // the page's view collects from its first use

async function abortedSpan (): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const span = roots(t.spans.getFinishedSpans()).find(s => s.attributes['journey.aborted'] === true)
    if (span !== undefined) { t.spans.reset(); return span.attributes }
    await sleep(10)
  }
  throw new Error('no aborted request span')
}

test('the server\'s socket timeout cuts a request off: aborted by the server, on the span and the page', async () => {
  t.app.server.timeout = 200 // what Fastify's connectionTimeout sets on the servers it creates
  try {
    const c = await connect(port)
    await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
    assert.equal(await c.read(), '', 'closed without an answer, after the timeout')
    const a = await abortedSpan()
    assert.equal(a['journey.aborted_by'], 'server')
    const m = parseMetrics(await t.registry.metrics())
    assert.equal(sum(m, 'http_server_request_duration_seconds_count', { http_response_status_code: 'aborted' }), 1)
    const recent = t.journey.recent.snapshot().recent
    assert.equal(recent[0]!.abortedBy, 'server')
    assert.match(fragments(t.journey.recent.snapshot()).rows, /aborted by server/)
  } finally {
    t.app.server.timeout = 0
  }
})

test('a client that leaves mid-handler (here by half-closing, which Node\'s HTTP/1 server takes as leaving): aborted by the client', async () => {
  const c = await connect(port)
  await c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await sleep(50)
  c.socket.end()
  const a = await abortedSpan()
  assert.equal(a['journey.aborted_by'], 'client')
  assert.equal(t.journey.recent.snapshot().recent[0]!.abortedBy, 'client')
})
