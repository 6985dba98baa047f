// bench/tick-state.ts: a real Node process asked for its nextTick feedback, and the reading of that output.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tickStateOf } from '../bench/tick-state.ts'

const module = fileURLToPath(new URL('../bench/tick-state.ts', import.meta.url))

/** A process that calls nextTick, is sent SIGWINCH, and exits; its stdout, to a file as the bench has it (V8 prints through C stdio). */
async function printed (flags: string[]): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'tick-state-')), 'stdout')
  const child = spawn(process.execPath, [...flags, '--input-type=module', '-e', `
    import { reportTickStateOnSignal } from ${JSON.stringify(module)}
    reportTickStateOnSignal()
    for (let i = 0; i < 1000; i++) process.nextTick(() => {}, i)
    process.stderr.write('ready\\n')
    setTimeout(() => process.exit(0), 2000)
  `], { stdio: ['ignore', openSync(file, 'w'), 'pipe'] })
  await once(child.stderr!, 'data')
  child.kill('SIGWINCH')
  await once(child, 'exit')
  return readFileSync(file, 'utf8')
}

test('a process started with --allow-natives-syntax reports its nextTick caches, read as normal', async () => {
  const out = await printed(['--allow-natives-syntax'])
  assert.match(out, /DefineKeyedOwnPropertyInLiteral MONOMORPHIC/, 'V8 lists the literal\'s property definitions')
  assert.equal(tickStateOf(out), 'normal')
})

test('without --allow-natives-syntax nothing is printed, and the state is unknown (never taken as normal)', async () => {
  const out = await printed([])
  assert.equal(out, '')
  assert.equal(tickStateOf(out), 'unknown')
})

test('a megamorphic definition in the last report reads as slow', () => {
  const report = (state: string): string => `BENCH-TICK-STATE\nDebugPrint: ...\n - slot #50 DefineKeyedOwnPropertyInLiteral MONOMORPHIC {\n - slot #58 DefineKeyedOwnPropertyInLiteral ${state} {\n`
  assert.equal(tickStateOf(report('MEGAMORPHIC')), 'slow')
  assert.equal(tickStateOf(report('MONOMORPHIC')), 'normal')
  // Only the last report counts: the state a process ended in.
  assert.equal(tickStateOf(report('MONOMORPHIC') + report('MEGAMORPHIC')), 'slow')
  assert.equal(tickStateOf('BENCH-TICK-STATE\nsomething V8 no longer prints\n'), 'unknown')
})
