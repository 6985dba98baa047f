// JOURNEY_PRECISION=fine: chunk arrival separates read from parse, a cipher tap separates decrypt from read.
import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import { byLabel, scrape, sum } from '../../experiments/lib/metrics.ts'
import { connect, splitHeaders } from '../helpers/raw.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'
import { durationMs, ms, roots, stage, stageNames, waterfall } from '../helpers/spans.ts'

let t: TestServer
before(async () => { t = await startTestServer({ JOURNEY_PRECISION: 'fine' }) })
after(async () => { await t.close() })
beforeEach(() => { t.exporter.reset() })

async function only (route: string) {
  const spans = await t.spansWhere(s => roots(s, route).length >= 1)
  return waterfall(spans, roots(spans, route)[0]!)
}

test('HTTP: headers in two chunks 50 ms apart — read holds the wait, parse starts at the last chunk', async () => {
  await splitHeaders(t.server.ports.http, 50)
  const w = await only('/')
  assert.deepEqual(stageNames(w), ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'])
  assert.equal(w.root.attributes['journey.precision'], 'fine')
  assert.ok(durationMs(stage(w, 'read')!) >= 45)
  assert.ok(durationMs(stage(w, 'parse')!) < 20)
})

test('HTTPS: read → decrypt → parse, in order, and read no longer claims to include decryption', async () => {
  const r = await request(`${t.https}/echo`, { method: 'POST', dispatcher: t.insecure, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: 'fine' }) })
  assert.equal(r.statusCode, 200)
  assert.deepEqual(await r.body.json(), { message: 'fine' })
  const w = await only('/echo')
  assert.deepEqual(stageNames(w), ['accept', 'tls', 'read', 'decrypt', 'parse', 'decode', 'handler', 'serialize', 'write'])
  assert.equal(stage(w, 'read')!.attributes['journey.read.includes_decrypt'], false)
  let prev = -Infinity
  for (const s of w.stages) {
    assert.ok(ms(s.startTime) >= prev - 1e-3, `${s.name} after the stage before`)
    prev = ms(s.endTime)
  }
  assert.equal(stage(w, 'tls')!.attributes['tls.protocol.version'], '1.3')
})

test('HTTPS keep-alive and a large streamed response work through the cipher tap', async () => {
  const c = await connect(t.server.ports.https, true)
  await c.write('GET /download?kb=2048 HTTP/1.1\r\nHost: x\r\n\r\n')
  while (c.received() < 2048 * 1024) await sleep(10)
  await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await c.read(s => s.endsWith('{"hello":"journey"}'))
  c.close()
  const spans = await t.spansWhere(s => roots(s, '/').length >= 1 && roots(s, '/download').length >= 1)
  const second = waterfall(spans, roots(spans, '/')[0]!)
  assert.deepEqual(stageNames(second).slice(0, 3), ['read', 'decrypt', 'parse'])
  assert.equal(second.root.attributes['journey.connection.request_index'], 2)
})

test('HTTPS on new connections: the request duration metric is the stages from read on plus the server\'s gaps, so the handshake is not counted in it too', async () => {
  // TLS 1.3 clients send their request right behind the handshake's last message, so its first ciphertext
  // can arrive before the server's handshake ends; that time is the tls stage's, not the request's.
  const before = await scrape(`${t.admin}/metrics`)
  for (let i = 0; i < 10; i++) {
    const fresh = new Agent({ connect: { rejectUnauthorized: false } })
    const r = await request(`${t.https}/`, { dispatcher: fresh })
    await r.body.text()
    await fresh.close()
  }
  await sleep(50)
  const after = await scrape(`${t.admin}/metrics`)
  const grew = (name: string, labels: Record<string, string>): number => sum(after, name, labels) - sum(before, name, labels)
  const stages = byLabel(after, 'journey_stage_duration_seconds_sum', 'stage', { route: '/' })
  const stagesBefore = byLabel(before, 'journey_stage_duration_seconds_sum', 'stage', { route: '/' })
  const fromRead = ['read', 'decrypt', 'parse', 'decode', 'handler', 'serialize', 'write'].reduce((n, s) => n + (stages.get(s) ?? 0) - (stagesBefore.get(s) ?? 0), 0)
  const gaps = grew('journey_gap_duration_seconds_sum', { route: '/', gap: 'hooks' }) + grew('journey_gap_duration_seconds_sum', { route: '/', gap: 'pipelined' })
  const duration = grew('http_server_request_duration_seconds_sum', { http_route: '/', url_scheme: 'https' })
  assert.equal(grew('http_server_request_duration_seconds_count', { http_route: '/', url_scheme: 'https' }), 10)
  assert.ok(Math.abs(fromRead + gaps - duration) < 1e-9, `stages ${fromRead} + gaps ${gaps} = duration ${duration}`)
})
