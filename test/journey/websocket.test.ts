// @fastify/websocket with the journey, registered in either order: the upgrade request goes through
// Fastify's routing and hooks, then leaves HTTP. Its record ends there, status 101, with the handshake in
// its handler stage; the connection lives on as a WebSocket until its close. Node's own WebSocket client.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import websocket, { type WebsocketHandler } from '@fastify/websocket'
import { request } from 'undici'
import { connect } from '../helpers/raw.ts'
import { channels, type RequestRecord } from '../../src/journey/index.ts'
import { durationMs, roots, stageNames, waterfall } from '../helpers/spans.ts'
import { tracedJourney, type TracedJourney } from '../helpers/traced.ts'

type Order = 'journey first' | 'websocket first'
const ORDERS: Order[] = ['journey first', 'websocket first']

/** A traced journey and @fastify/websocket registered in `order`, a WebSocket route /ws, and every record published. */
async function wsApp (order: Order, handler: WebsocketHandler): Promise<TracedJourney & { port: number, records: RequestRecord[] }> {
  const t = tracedJourney()
  const records: RequestRecord[] = []
  const onRecord = (m: unknown): void => { records.push(m as RequestRecord) }
  channels.request.subscribe(onRecord)
  if (order === 'websocket first') await t.app.register(websocket)
  await t.app.register(t.journey.plugin)
  if (order === 'journey first') await t.app.register(websocket)
  t.app.get('/ws', { websocket: true }, handler)
  const port = await t.listen()
  return { ...t, port, records, close: async () => { channels.request.unsubscribe(onRecord); await t.close() } }
}

for (const order of ORDERS) {
  test(`a WebSocket upgrade is a request that ends at its 101; the connection lives on (${order})`, { timeout: 20_000 }, async () => {
    const { port, records, spans, registry, close } = await wsApp(order, (socket) => {
      socket.on('message', (m: Buffer) => socket.send(`echo ${m.toString()}`))
    })
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject })
      const echoed = new Promise<string>(resolve => { ws.onmessage = (e) => resolve(String(e.data)) })
      ws.send('hi')
      const closed = new Promise<string>(resolve => { ws.onclose = (e) => resolve(`closed by the server: ${e.code}`) })
      assert.equal(await Promise.race([echoed, closed, sleep(5000, 'no answer in 5 s')]), 'echo hi', 'the WebSocket works with the journey')

      // The upgrade request is over while its WebSocket is still open.
      await sleep(20)
      const upgrade = records.filter(r => r.route === '/ws')
      assert.equal(upgrade.length, 1, 'published once, at the upgrade')
      assert.equal(upgrade[0]!.status, 101)
      assert.equal(upgrade[0]!.aborted, false)
      await sleep(200)
      ws.close()
      await new Promise(resolve => { ws.onclose = resolve })
      // A plain GET of the same route: @fastify/websocket's 404, a request like any other.
      const plain = await request(`http://127.0.0.1:${port}/ws`)
      assert.equal(plain.statusCode, 404)
      await plain.body.text()
      await sleep(50)

      assert.deepEqual(records.filter(r => r.route === '/ws').map(r => [r.status, r.aborted]), [[101, false], [404, false]], 'nothing cut off at the close')
      const all = spans.getFinishedSpans()
      const root = roots(all, '/ws').find(s => s.attributes['http.response.status_code'] === 101)
      assert.ok(root !== undefined, all.map(s => s.name).join(', '))
      assert.equal(root.attributes['journey.sampling.rule'], 'head', 'kept by the sampler, not as an error')
      assert.equal(root.status.code, 0)
      const w = waterfall(all, root)
      assert.equal(stageNames(w).at(-1), 'handler', 'the handler wrote the 101 itself: no serialize or write')
      assert.equal(w.stages.at(-1)!.attributes['journey.handler.wrote_response'], true)
      assert.ok(durationMs(root) < 150, `the request is the upgrade, not the 200 ms WebSocket session: ${durationMs(root)} ms`)
      const conn = all.find(s => s.name === 'journey.connection' && s.attributes['journey.connection.id'] === root.attributes['journey.connection.id'])
      assert.ok(conn !== undefined && durationMs(conn) >= 200, 'the connection span holds the WebSocket\'s life')

      const text = await registry.metrics()
      assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/ws",http_response_status_code="101",url_scheme="http",network_protocol_version="1\.1"\} 1/)
      assert.match(text, /journey_stage_duration_seconds_count\{stage="handler",method="GET",route="\/ws"\} 2/, 'both requests have a handler stage')
      assert.doesNotMatch(text, /error_type="aborted"/)
      const written = /journey_response_written_bytes_sum\{http_request_method="GET",http_route="\/ws"\} (\d+)/.exec(text)
      assert.ok(written !== null && Number(written[1]) > 100 && Number(written[1]) < 600, `the 101 and the 404, not the WebSocket's frames: ${written?.[1]} bytes`)
    } finally {
      await close()
    }
  })
}

for (const order of ORDERS) {
  test(`a WebSocket handshake ws refuses is no upgrade: no 101 is recorded (${order})`, { timeout: 20_000 }, async () => {
    const { port, records, close } = await wsApp(order, () => {})
    try {
      const c = await connect(port)
      await c.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      assert.match(await c.read(), /^HTTP\/1\.1 400/, 'ws answers the handshake itself, and closes')
      await sleep(50)
      // ws wrote its 400 on the socket, past any response object: the journey sees a request cut off.
      assert.deepEqual(records.map(r => [r.route, r.status, r.aborted]), [['/ws', 0, true]])
    } finally {
      await close()
    }
  })
}

