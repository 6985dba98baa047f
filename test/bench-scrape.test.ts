// npm run bench:scrape renders the journey's metrics for N routes, and the same series as prom-client's own
// metrics, in fresh processes, and times an OTLP push of the same registry. It checks the script runs and prints a
// row per routes and kind, and that the baseline really holds the journey's series: as many lines, growing with the routes.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../bench/scrape.ts', import.meta.url))

test('bench:scrape prints render times for the journey, for prom-client holding the same series, and for an OTLP push of the journey\'s, per route count', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script], { env: { PATH: process.env.PATH, ROUTES: '3,30', RENDERS: '2', ROUNDS: '1' }, timeout: 60_000 },
      (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${String(err)}\n${stderr}`)))
  })
  const row = (routes: number, kind: string): { lines: number, firstMs: number, laterMs: number } => {
    const m = new RegExp(`^\\| ${routes} \\| ${kind} \\| (\\d+) \\| [\\d.]+ \\| ([\\d.]+) ms \\| ([\\d.]+) ms, [\\d.]+ ms \\|`, 'm').exec(out)
    assert.ok(m !== null, `no row for ${routes} routes, ${kind} in:\n${out}`)
    return { lines: Number(m[1]), firstMs: Number(m[2]), laterMs: Number(m[3]) }
  }
  for (const routes of [3, 30]) {
    const journey = row(routes, 'journey')
    const base = row(routes, 'prom-client')
    // The same series, line for line: a baseline with fewer would flatter the journey.
    assert.equal(journey.lines, base.lines, `${routes} routes: ${journey.lines} lines against ${base.lines}`)
    assert.ok(journey.laterMs > 0 && base.laterMs > 0 && journey.firstMs > 0, out)
  }
  assert.ok(row(30, 'journey').lines > 5 * row(3, 'journey').lines, 'the series grow with the routes')
  assert.match(out, /^\| 30 \| journey \|.*\| \d+\.\d\d of prom-client \|$/m)
  // The push of the same registry: its data points grow with the routes as the text's lines do.
  assert.ok(row(30, 'otlp push').lines > 5 * row(3, 'otlp push').lines, 'the data points grow with the routes')
  assert.ok(row(30, 'otlp push').lines < row(30, 'journey').lines, 'a histogram is one point, not a line per bucket')
  assert.match(out, /^\| 30 \| otlp push \|.*\| \d+\.\d\d of journey \|$/m)
})
