// Keeps the hidden classes of Node's process.nextTick objects alive for the life of the process, so that
// nextTick does not become ≈ 2 µs slower (≈ 15 % of a bare `GET /` here) at some random moment, for good.
//
// Why: process.nextTick builds every tick object with one object literal whose keys are computed
// (node:internal/process/task_queues). For each such key V8 records the hidden class the object had before
// the key was defined, and this kind of feedback has no polymorphic state: one class, or "any"
// (megamorphic) from the first other class on (Runtime_DefineKeyedOwnPropertyInLiteral). Nothing but live
// tick objects holds those classes. When they are collected, the next tick builds the same chain of classes
// anew, the feedback sees a class it has not seen, and it turns megamorphic for the rest of the process's
// life. Measured with `node --log-maps` on the bench's servers (bench/NOTES.md, seventeenth session): the
// four processes of 32 left that way had built the chain once more than the others, seconds into their
// life; holding one tick object, each built it once, and none of 32 was left slow (4–8 of 32 without). A
// process that has run ticks and then twice idles through full collections with none queued ends that way
// every time, and never with this (test/tick-shape.test.ts). In a real server that is what going quiet does:
// V8's memory reducer runs such collections when the allocation rate drops. Bare bench servers warmed, then
// idle for a minute with Node's default flags, all ended that way without this (7 of 7; three came back
// ≈ 2–3 µs per request slower; the state before the pause was not read) and none with it (0 of 7):
// bench/NOTES.md, eighteenth session.
//
// Holding one tick object keeps its class, and through each class's back pointer the whole chain. No
// public API hands out a tick object; an async_hooks init hook is given each new one, so a hook is enabled
// for a single nextTick at start-up and disabled at once (while no hook is enabled, Node runs no hook code).
// It is Node's own problem, not the journey's: every Node server has it. Call it once, early.
import { createHook } from 'node:async_hooks'

let kept: object | undefined

/** Idempotent. Returns the tick object now held for good, or undefined if Node no longer reports tick objects. */
export function keepTickShape (): object | undefined {
  if (kept !== undefined) return kept
  const hook = createHook({
    init (_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && kept === undefined) kept = resource
    }
  })
  hook.enable()
  try {
    process.nextTick(noop)
  } finally {
    hook.disable()
  }
  return kept
}

function noop (): void {}
