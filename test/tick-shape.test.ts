// src/tick-shape.ts: it must hold a real tick object of this Node's process.nextTick (the object whose hidden
// classes it keeps alive), once. What holding it buys was measured on the bench's servers (bench/NOTES.md,
// seventeenth session); what this checks is that it still gets hold of the right object on this Node, and
// would fail if Node renamed or reshaped its tick objects (the fix would then silently do nothing).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { keepTickShape } from '../src/tick-shape.ts'

test('keepTickShape holds one of process.nextTick\'s own tick objects, and the same one when called again', () => {
  const tick = keepTickShape()
  assert.ok(tick !== undefined, 'an init hook saw a TickObject')
  // The keys task_queues.js defines (ownKeys lists string keys before symbols).
  assert.deepEqual(Reflect.ownKeys(tick).map(k => typeof k === 'symbol' ? k.description : k),
    ['callback', 'args', 'async_id_symbol', 'trigger_async_id_symbol', 'kAsyncContextFrame'])
  assert.equal(typeof (tick as { callback?: unknown }).callback, 'function')
  assert.equal(keepTickShape(), tick, 'idempotent: no second hook, no second object')
})
