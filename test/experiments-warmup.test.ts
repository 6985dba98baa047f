// The one-at-a-time experiments' shared warm-up: every variant's request, in turn, before any is measured.
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { Agent } from 'undici'
import { warmUp } from '../experiments/lib/one-at-a-time.ts'

test('warmUp sends each target, as it says (method, body, headers), in turn, for every round', async () => {
  const seen: string[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-variant'] ?? '-'} ${body}`)
      res.end('ok')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const agent = new Agent({ connections: 1 })
  try {
    const where = { host: '127.0.0.1', http: (server.address() as AddressInfo).port, https: NaN }
    await warmUp(where, agent, [
      { path: '/a' },
      { path: '/b', opts: { body: '{"x":1}', headers: { 'x-variant': 'b' } } }
    ], 3)
    assert.deepEqual(seen, [
      'GET /a - ', 'POST /b b {"x":1}',
      'GET /a - ', 'POST /b b {"x":1}',
      'GET /a - ', 'POST /b b {"x":1}'
    ])
  } finally {
    await agent.close()
    server.close()
  }
})
