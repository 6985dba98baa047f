// The bench trusts wrk's counts: requests per CPU-second divide by them, and a window whose responses were
// errors must be dropped, not reported as cheap serving. Real wrk against real local servers.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { wrk } from '../bench/wrk.ts'

// CI installs wrk: there a missing wrk is a failure. Elsewhere the test says why it skips.
let skip: string | false = false
try { execFileSync('wrk', ['--version'], { stdio: 'ignore' }) } catch (err) {
  // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
  if ((err as NodeJS.ErrnoException).code === 'ENOENT' && process.env.CI !== 'true') skip = 'wrk is not installed (apt-get install wrk)'
}
if (skip !== false) console.log(`# skipping the wrk test: ${skip}`)

async function serve (handler: Parameters<typeof createServer>[1]): Promise<{ server: Server, url: string, served: () => number }> {
  let served = 0
  const server = createServer((req, res) => { served++; handler!(req, res) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, served: () => served }
}

test('wrk: requests are the responses the server sent, and error responses are counted as errors', { skip }, async () => {
  const ok = await serve((_req, res) => res.end('ok'))
  // Every third response a 500: the bench must see these windows as broken.
  let n = 0
  const failing = await serve((_req, res) => { res.statusCode = ++n % 3 === 0 ? 500 : 200; res.end('x') })
  try {
    const good = await wrk(ok.url, 1, undefined, 4)
    assert.ok(good.requests > 100, `requests ${good.requests}`)
    // wrk stops mid-request on a few connections at the end: what it counted is what the server answered, give or take those.
    assert.ok(Math.abs(ok.served() - good.requests) <= 4, `server answered ${ok.served()}, wrk counted ${good.requests}`)
    assert.equal(good.errors, 0)
    assert.ok(good.p50 > 0 && good.p99 >= good.p50, `p50 ${good.p50} p99 ${good.p99}`)

    const bad = await wrk(failing.url, 1, undefined, 4)
    assert.ok(bad.requests > 100)
    assert.ok(Math.abs(bad.errors - bad.requests / 3) <= bad.requests * 0.05 + 4, `errors ${bad.errors} of ${bad.requests}`)
  } finally {
    ok.server.close()
    failing.server.close()
    ok.server.closeAllConnections()
    failing.server.closeAllConnections()
  }
})

test('wrk: how often its thread slept per response — about once for a server that answers one at a time, 5 ms apart', { skip }, async () => {
  // One connection and a 5 ms wait per answer: wrk has nothing to do between responses, so it sleeps
  // before each one. (wrk's main thread only waits for its worker: counting it alone would say 0.)
  const slow = await serve((_req, res) => { setTimeout(() => res.end('x'), 5) })
  try {
    const r = await wrk(slow.url, 2, undefined, 1)
    assert.ok(r.requests > 20, `requests ${r.requests}`)
    assert.ok(r.sleepsPerResponse >= 0.8 && r.sleepsPerResponse <= 3, `sleeps per response ${r.sleepsPerResponse}`)
  } finally {
    slow.server.close()
    slow.server.closeAllConnections()
  }
})

test('wrk: a server that is not there rejects (the bench stops), not a fast window', { skip }, async () => {
  const gone = await serve((_req, res) => res.end())
  const url = gone.url
  await new Promise(resolve => gone.server.close(resolve))
  await assert.rejects(wrk(url, 1, undefined, 2), /Command failed/)
})
