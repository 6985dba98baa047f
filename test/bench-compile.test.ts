// The bench's servers run compiled to JavaScript without Node's TypeScript stripper (bench/compile.ts): the
// compiled server serves every variant's code with .ts loading switched off, and the folder it was compiled
// into lives only as long as the process that compiled it (or, left by one that was killed, until the next).
import assert from 'node:assert/strict'
import { execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { root, startServer, stopServers } from '../bench/servers.ts'

test('a bench server runs compiled, with .ts loading off, and serves every route', async () => {
  const children: ChildProcess[] = []
  const out = join(mkdtempSync(join(tmpdir(), 'bench-compile-')), 'server.log')
  // The variant that loads the most: the journey, the OTLP export worker (a thread of its own), the serializer.
  const server = await startServer('journey-100pct', 40, { flags: [], stdout: out, children })
  try {
    const argv = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    assert.ok(argv.includes('--no-experimental-strip-types'), argv.join(' '))
    assert.match(argv.at(-1)!, /\/\.dist-bench-\d+\/bench\/server\.js$/)
    // With the stripper off, a .ts file anywhere (a worker's entry, an import left unrewritten) throws.
    const curl = (...args: string[]): string => execFileSync('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', ...args], { encoding: 'utf8' })
    assert.equal(curl('http://127.0.0.1:3140/'), '200')
    assert.equal(curl('http://127.0.0.1:3140/echo', '-H', 'content-type: application/json', '-d', '{"message":"x"}'), '200')
    assert.equal(curl('https://127.0.0.1:3583/'), '200')
    assert.equal(curl('http://127.0.0.1:3140/compute?ms=1&offload=1'), '200') // the demo's compute worker
  } finally {
    await stopServers([server], () => out)
  }
  assert.equal(server.exitCode, 0, readFileSync(out, 'utf8'))
})

test('the compiled folder is removed when its process exits, and a dead process\'s at the next compile', () => {
  const stale = join(root, '.dist-bench-999999999')
  mkdirSync(join(stale, 'bench'), { recursive: true })
  const compile = fileURLToPath(new URL('../bench/compile.ts', import.meta.url))
  const printed = execFileSync(process.execPath, ['--input-type=module', '-e',
    `import { compiledServer } from ${JSON.stringify(compile)}; import { existsSync } from 'node:fs'
     const entry = compiledServer(${JSON.stringify(root)}); console.log(JSON.stringify([entry, existsSync(entry), existsSync(${JSON.stringify(stale)})]))`],
  { encoding: 'utf8' })
  // As JSON: a checkout's path may hold spaces.
  const [entry, existed, staleLeft] = JSON.parse(printed) as [string, boolean, boolean]
  assert.match(entry, /\/\.dist-bench-\d+\/bench\/server\.js$/)
  assert.equal(existed, true)
  assert.equal(staleLeft, false)
  assert.equal(existsSync(entry), false)
})
