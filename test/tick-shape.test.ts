// src/tick-shape.ts, against the problem it exists for, reproduced in a real Node process: after nextTick has
// run for a while, idle pauses with full garbage collections (no tick queued) free the hidden classes of its
// tick objects, the next ticks build new ones, and V8's feedback for the tick literal's property definitions
// turns megamorphic for good — the "slow process" state bench/tick-state.ts reads. Holding one tick object
// (keepTickShape) must prevent it. What that is worth per request was measured on the bench's servers
// (bench/NOTES.md, seventeenth session).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tickStateOf, TICK_STATE_MARK } from '../bench/tick-state.ts'
import { keepTickShape } from '../src/tick-shape.ts'

const tickShape = fileURLToPath(new URL('../src/tick-shape.ts', import.meta.url))

/** nextTick's feedback state in a process that runs ticks, then twice pauses with full collections and runs more. */
async function stateAfterIdleCollections (keep: boolean): Promise<string> {
  const script = `
    import { keepTickShape } from ${JSON.stringify(tickShape)}
    if (${keep}) keepTickShape()
    const noop = () => {}
    const ticks = n => new Promise(resolve => {
      let i = 0
      const step = () => { for (let k = 0; k < 500 && i < n; k++, i++) process.nextTick(noop, k); setImmediate(i < n ? step : resolve) }
      step()
    })
    const pause = ms => new Promise(resolve => setTimeout(resolve, ms))
    await ticks(50000)
    for (let round = 0; round < 2; round++) {
      await pause(50); gc()
      await pause(50); gc()
      await ticks(2000)
    }
    process.stdout.write(${JSON.stringify(TICK_STATE_MARK + '\n')})
    new Function('f', '%DebugPrint(f)')(process.nextTick)
  `
  // stdout to a file, as the bench has it: V8 prints through C stdio, which a pipe does not get whole.
  const file = join(mkdtempSync(join(tmpdir(), 'tick-shape-')), 'stdout')
  const child = spawn(process.execPath, ['--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', script],
    { stdio: ['ignore', openSync(file, 'w'), 'inherit'] })
  const [code] = await once(child, 'exit') as [number | null]
  assert.equal(code, 0)
  return tickStateOf(readFileSync(file, 'utf8'))
}

test('idle pauses with full collections leave nextTick slow for good; holding one tick object prevents it', async () => {
  assert.equal(await stateAfterIdleCollections(false), 'slow',
    'without the fix the problem reproduces on this Node (if Node has fixed it, tick-shape.ts may no longer be needed)')
  assert.equal(await stateAfterIdleCollections(true), 'normal')
})

test('keepTickShape holds one of process.nextTick\'s own tick objects, and the same one when called again', () => {
  const tick = keepTickShape()
  assert.ok(tick !== undefined, 'an init hook saw a TickObject')
  // The keys task_queues.js defines (ownKeys lists string keys before symbols).
  assert.deepEqual(Reflect.ownKeys(tick).map(k => typeof k === 'symbol' ? k.description : k),
    ['callback', 'args', 'async_id_symbol', 'trigger_async_id_symbol', 'kAsyncContextFrame'])
  assert.equal(typeof (tick as { callback?: unknown }).callback, 'function')
  assert.equal(keepTickShape(), tick, 'idempotent: no second hook, no second object')
})
