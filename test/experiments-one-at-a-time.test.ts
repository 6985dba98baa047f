// The one-at-a-time experiments' measuring loop (experiments/lib/one-at-a-time.ts): the shared warm-up, and
// the variants taking turns, with each variant's server-side growth added up over its turns.
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { Agent } from 'undici'
import { interleaved, turnShare, warmUp } from '../experiments/lib/one-at-a-time.ts'
import { parseMetrics, sum } from '../experiments/lib/metrics.ts'
import type { ExperimentServer } from '../experiments/lib/server.ts'

/** A server that logs what it was sent and counts requests by path, as a /metrics page would; /fail answers 500. */
async function recorder (): Promise<{ server: Server, seen: string[], where: ExperimentServer }> {
  const seen: string[] = []
  const counts = new Map<string, number>()
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-variant'] ?? '-'} ${body}`)
      counts.set(req.url!, (counts.get(req.url!) ?? 0) + 1)
      res.statusCode = req.url === '/fail' ? 500 : 200
      res.end('ok')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  after(() => server.close())
  const scrape = async (): Promise<ReturnType<typeof parseMetrics>> => parseMetrics([...counts].map(([path, n]) => `requests_total{path="${path}"} ${n}`).join('\n'))
  const where = { host: '127.0.0.1', http: (server.address() as AddressInfo).port, https: NaN, scrape } as unknown as ExperimentServer
  return { server, seen, where }
}

test('warmUp sends each target, as it says (method, body, headers), in turn, for every round', async () => {
  const { seen, where } = await recorder()
  const agent = new Agent({ connections: 1 })
  after(() => agent.close())
  await warmUp(where, agent, [
    { path: '/a' },
    { path: '/b', opts: { body: '{"x":1}', headers: { 'x-variant': 'b' } } }
  ], 3)
  assert.deepEqual(seen, [
    'GET /a - ', 'POST /b b {"x":1}',
    'GET /a - ', 'POST /b b {"x":1}',
    'GET /a - ', 'POST /b b {"x":1}'
  ])
})

test('interleaved: the variants take turns, each after its uncounted warm-up, and each result holds only its own counted requests', async () => {
  const { seen, where } = await recorder()
  const agent = new Agent({ connections: 1 })
  after(() => agent.close())
  const [a, fail] = await interleaved(where, agent, [{ path: '/a' }, { path: '/fail', status: 200 }], {
    requests: 5, rounds: 2, warmup: 1, label: 'test', progress: () => {}
  })
  // 5 requests over 2 turns: 2 in the first, 3 in the second; one warm-up before each turn.
  assert.deepEqual(seen.map(l => l.split(' ')[1]), [
    '/a', '/a', '/a', '/fail', '/fail', '/fail',
    '/a', '/a', '/a', '/a', '/fail', '/fail', '/fail', '/fail'
  ])
  assert.equal(sum(a!.after, 'requests_total', { path: '/a' }), 5, 'the warm-ups are not counted')
  assert.equal(sum(a!.after, 'requests_total', { path: '/fail' }), 0, 'nor the other variant\'s turns')
  assert.equal(sum(fail!.after, 'requests_total', { path: '/fail' }), 5)
  assert.equal(a!.failed, 0)
  assert.equal(fail!.failed, 5, 'answers other than the status expected are counted')
  assert.ok(a!.clientMeanMs > 0 && a!.bytes === 2)
})

test('turnShare spreads a count over the turns evenly, adding up to exactly the count', () => {
  for (const [total, turns] of [[5, 2], [3, 10], [300, 10], [30, 7], [0, 4]] as const) {
    const shares = Array.from({ length: turns }, (_, t) => turnShare(t, total, turns))
    assert.equal(shares.reduce((a, b) => a + b, 0), total, `${total} over ${turns}`)
    assert.ok(Math.max(...shares) - Math.min(...shares) <= 1, `${total} over ${turns}: ${shares.join(' ')}`)
  }
})
