// The README's "Try it" block is the first thing a new user runs: every line of it, as written, against the
// server `npm start` runs (its fixed ports swapped for this test's), each curl made to fail on an HTTP
// error status, the whole block under `set -euo pipefail` — so a renamed route, a changed status or a grep
// that no longer matches fails here, not in front of a new user.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { killAll, start } from './helpers/process.ts'

const exec = promisify(execFile)
after(killAll)

/** The shell lines of the fenced block after "Try it:", comments dropped. */
function tryItLines (readme: string): string[] {
  const block = /\nTry it:\n+```sh\n([\s\S]*?)\n```/.exec(readme)
  assert.ok(block !== null, 'the README has a "Try it:" block')
  return block[1]!.split('\n')
    .filter(l => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .map(l => l.replace(/\s+#\s.*$/, ''))
}

test('the README\'s "Try it" commands all run as written and answer 2xx, against the server npm start runs', async () => {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')
  const lines = tryItLines(readme)
  assert.ok(lines.length >= 10, lines.join('\n'))
  // The block's comments say which lines want HTTPS_HTTP2 and JOURNEY_SERVER_TIMING; one server has both.
  const s = await start({ HTTPS_HTTP2: 'true', JOURNEY_SERVER_TIMING: 'true', LOG_LEVEL: 'info' })
  const script = lines
    .map(l => l
      .replaceAll('localhost:3000', `127.0.0.1:${s.ports.http}`)
      .replaceAll('localhost:3443', `localhost:${s.ports.https}`)
      .replaceAll('localhost:9464', `127.0.0.1:${s.ports.metrics}`)
      .replace(/\bcurl /g, 'curl --fail --show-error ')
      // A command sent to the background: its pid kept, so its exit status is waited for below (`wait`
      // alone returns 0 whatever the job did).
      .replace(/ & /g, ' & pids+=($!); '))
    .join('\n')
  assert.doesNotMatch(script, /:(3000|3443|9464)\b/, 'every port the README names is one this test swapped')
  const cwd = mkdtempSync(join(tmpdir(), 'try-it-'))
  const { stdout } = await exec('bash', ['-c', `set -euo pipefail\npids=()\n${script}\nfor p in "\${pids[@]}"; do wait "$p"; done`], { cwd, timeout: 30_000, maxBuffer: 64 * 1024 * 1024 })
  assert.match(stdout, /\{"hello":"journey"\}/)
  assert.match(stdout, /\{"message":"hello"\}/, 'the gzipped body echoed')
  assert.match(stdout, /^server-timing: .*handler;dur=/im)
  assert.match(stdout, /journey_stage_duration_seconds_bucket/)
  assert.match(stdout, /^\/journey +the journey page/m, 'the admin port\'s index')
})
