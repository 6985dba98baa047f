// npm run bench:latency paces wrk with a random wait before each request (bench/paced.ts): the script it
// writes, the line it reads back, that the pace holds against a real server, and a whole run, smallest.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { paced, pacedScript, parsePaced } from '../bench/paced.ts'
import { root } from '../bench/servers.ts'

const dir = mkdtempSync(join(tmpdir(), 'bench-latency-'))
after(() => { rmSync(dir, { recursive: true, force: true }) })

test('the script keeps the route\'s own lines, waits an exponential time of the asked mean, and prints its percentiles in µs', () => {
  const lua = pacedScript('wrk.method = "POST"', 12.5)
  assert.match(lua, /^wrk\.method = "POST"\n/)
  assert.match(lua, /return math\.floor\(-12\.5 \* math\.log\(1 - math\.random\(\)\) \+ 0\.5\)/)
  assert.match(lua, /latency:percentile\(99\.9\)/)
  const r = parsePaced('Running 10s test\nPACED {"requests":39000,"durationUs":10000000,"errors":2,"p50":151,"p90":279,"p99":1021,"p999":7018,"max":8370}\n')
  assert.deepEqual(r, { requests: 39000, rps: 3900, errors: 2, p50Ms: 0.151, p90Ms: 0.279, p99Ms: 1.021, p999Ms: 7.018, maxMs: 8.37 })
  assert.throws(() => parsePaced('Running 10s test\n'), /no PACED line/)
})

test('paced wrk holds the rate asked for against a server that could answer far more, and reads real latencies', async () => {
  const server = createServer((req, res) => { res.end('{}') })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  after(() => server.close())
  const r = await paced({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, rate: 400, connections: 10, seconds: 3, base: '', script: join(dir, 'paced.lua') })
  // Flat out, wrk gets thousands a second from this server; paced, the waits (25 ms on average) set the rate.
  assert.ok(r.rps > 400 * 0.75 && r.rps < 400 * 1.1, `${r.rps.toFixed(0)} requests/s against 400 asked`)
  assert.equal(r.errors, 0)
  assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p90Ms && r.p90Ms <= r.p99Ms && r.p99Ms <= r.p999Ms && r.p999Ms <= r.maxMs, JSON.stringify(r))
})

test('a whole run, smallest: one row per variant and route, each measured without errors', { timeout: 240_000 }, async () => {
  const out = join(dir, 'latency.json')
  const { code, stdout, stderr } = await new Promise<{ code: number, stdout: string, stderr: string }>(resolve => {
    execFile(process.execPath, [join(root, 'bench', 'latency.ts')], {
      env: { PATH: process.env.PATH, VARIANTS: 'bare,journey-metrics', ROUTES: 'get,post', ROUNDS: '1', SECONDS: '1', WARM_S: '1', WARMUP_S: '1', RATE: '500', OUT: out },
      timeout: 200_000
    }, (e, o, er) => resolve({ code: e === null ? 0 : (e as { code?: number }).code ?? 1, stdout: o, stderr: er }))
  })
  assert.equal(code, 0, `${stderr}${stdout}`)
  assert.match(stdout, /^\| GET \/ \| bare \| \d+ \| [\d.]+ \| [\d.]+ \| \*\*[\d.]+\*\* \([\d.]+–[\d.]+\) \| [\d.]+ \| [\d.]+ \| \d+ % \|$/m, 'the table bench/README.md shows')
  const result = JSON.parse(readFileSync(out, 'utf8')) as { machine: string, method: string, rows: Array<Record<string, unknown>> }
  assert.match(result.method, /paced at 500 requests\/s/)
  assert.deepEqual(result.rows.map(r => `${String(r.variant)} ${String(r.route)}`).sort(), ['bare GET /', 'bare POST /echo 1 KiB', 'journey-metrics GET /', 'journey-metrics POST /echo 1 KiB'])
  for (const r of result.rows) {
    assert.equal(r.errors, 0, `${String(r.variant)} ${String(r.route)}: a POST answered 400 would be fast and wrong`)
    for (const k of ['rps', 'p50Ms', 'p90Ms', 'p99Ms', 'p99MsRange', 'p999Ms', 'maxMs', 'serverCpuShare']) assert.ok(k in r, `${k} missing`)
  }
})
