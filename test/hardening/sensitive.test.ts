// Nothing sensitive leaks into telemetry by default; chosen headers only through an allowlist.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { roots } from '../helpers/spans.ts'

let t: TestServer
before(async () => { t = await startTestServer({ JOURNEY_RECORD_HEADERS: 'user-agent, x-request-id', JOURNEY_RECORD_RESPONSE_HEADERS: 'content-type, content-encoding, content-length, x-not-sent' }) })
after(async () => { await t.close() })

test('no bodies, credentials, cookies or query strings in spans or metrics; allowlisted headers are there', async () => {
  const r = await request(`${t.http}/echo?token=SECRET-QUERY`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer SECRET-AUTH', cookie: 'session=SECRET-COOKIE', 'user-agent': 'journey-test/1', 'x-request-id': 'req-42' },
    body: JSON.stringify({ message: 'SECRET-BODY' })
  })
  assert.equal(r.statusCode, 200)
  await r.body.text()
  const spans = await t.spansWhere(s => roots(s, '/echo').length === 1)
  const dump = JSON.stringify(spans.map(s => ({ name: s.name, attributes: s.attributes, events: s.events, links: s.links })))
  for (const secret of ['SECRET-QUERY', 'SECRET-AUTH', 'SECRET-COOKIE', 'SECRET-BODY']) assert.ok(!dump.includes(secret), `${secret} leaked into spans`)
  const root = roots(spans, '/echo')[0]!
  assert.deepEqual(root.attributes['http.request.header.user-agent'], ['journey-test/1'])
  assert.deepEqual(root.attributes['http.request.header.x-request-id'], ['req-42'])
  const metrics = await (await request(`${t.admin}/metrics`)).body.text()
  for (const secret of ['SECRET-QUERY', 'SECRET-AUTH', 'SECRET-COOKIE', 'SECRET-BODY']) assert.ok(!metrics.includes(secret), `${secret} leaked into metrics`)
})

test('allowlisted response headers are recorded as they went out, a compressor\'s included; the others are not', async () => {
  const r = await request(`${t.http}/report?items=10`, { headers: { 'accept-encoding': 'gzip' } })
  assert.equal(r.headers['content-encoding'], 'gzip')
  await r.body.arrayBuffer()
  const spans = await t.spansWhere(s => roots(s, '/report').length === 1)
  const root = roots(spans, '/report')[0]!
  assert.deepEqual(root.attributes['http.response.header.content-type'], ['application/json; charset=utf-8'])
  assert.deepEqual(root.attributes['http.response.header.content-encoding'], ['gzip'], 'set by @fastify/compress\'s onSend, after the journey\'s')
  assert.deepEqual(root.attributes['http.response.header.content-length'], [String(r.headers['content-length'])], 'a number header as a string')
  assert.equal(root.attributes['http.response.header.x-not-sent'], undefined)
  assert.equal(root.attributes['http.response.header.vary'], undefined, 'not allowlisted')
})
