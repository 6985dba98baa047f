// npm run bench:serializer must run to the end and compare like with like: it refuses to time two
// serializers that wrote different bytes for its journey-shaped batch. (It asserts no time: that is the
// bench's to print.)
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

test('bench:serializer checks the bytes, then prints µs a span for the library and the journey, and their ratio', async () => {
  const script = fileURLToPath(new URL('../bench/serializer.ts', import.meta.url))
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [script], { env: { PATH: process.env.PATH, ROUNDS: '1', BATCHES: '5' }, timeout: 60_000 },
      (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`)))
  })
  assert.match(out, /the same bytes from both/)
  assert.match(out, /^library .* ([\d.]+) µs a span/m)
  assert.match(out, /^journey .* ([\d.]+) µs a span/m)
  assert.match(out, /^journey \/ library: \d+\.\d\d$/m)
})
