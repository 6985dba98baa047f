// A bench whose load generator is not installed stops before it starts anything, naming the program and
// its Debian package — not a minute of server start-ups later with taskset's "failed to execute wrk".
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { root } from '../bench/servers.ts'

test('npm run bench, bench:steady, bench:ab and bench:pace say at once that wrk is missing', async () => {
  // A PATH with every other program the benches run, and no wrk.
  const bin = mkdtempSync(join(tmpdir(), 'no-wrk-'))
  for (const program of ['taskset', 'curl']) symlinkSync(`/usr/bin/${program}`, join(bin, program))
  for (const script of ['run', 'steady', 'ab', 'pace']) {
    const { code, err } = await new Promise<{ code: number, err: string }>(resolve => {
      execFile(process.execPath, [join(root, 'bench', `${script}.ts`)], { env: { PATH: bin }, timeout: 30_000 },
        (e, _out, stderr) => resolve({ code: e === null ? 0 : (e as { code?: number }).code ?? 1, err: stderr }))
    })
    assert.equal(code, 1, `${script}: ${err}`)
    assert.match(err, /^this bench runs wrk, not found on PATH: apt-get install wrk$/m, script)
  }
})
