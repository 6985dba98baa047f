// npm run bench:connections holds idle keep-alive connections on a bare server and on one with the journey,
// and prints heap and RSS per connection. It checks the script runs and prints both rows; the journey's
// connection record and listeners must show as more heap per connection than bare's.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../bench/connections.ts', import.meta.url))

test('bench:connections prints heap and RSS per idle connection, bare and with the journey', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script], { env: { PATH: process.env.PATH, CONNECTIONS: '500', ROUNDS: '1' }, timeout: 60_000 },
      (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${String(err)}\n${stderr}`)))
  })
  const row = (kind: string): [number, number] => {
    const m = new RegExp(`^\\| ${kind} \\| (-?\\d+) B \\| (-?[\\d.]+) KiB \\|$`, 'm').exec(out)
    assert.ok(m !== null, `no row for ${kind} in:\n${out}`)
    return [Number(m[1]), Number(m[2])]
  }
  const [bareHeap] = row('bare')
  const [journeyHeap, journeyRss] = row('journey')
  assert.ok(bareHeap > 1000, `a bare idle connection holds heap too: ${bareHeap} B`)
  assert.ok(journeyHeap > bareHeap + 500, `the journey's connection record shows: ${journeyHeap} B against ${bareHeap}`)
  assert.ok(Number.isFinite(journeyRss), out)
})
