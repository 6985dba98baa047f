// A V8 state that makes a whole Node process slower, instrumented or not, and how the bench tells it.
//
// In some processes (here 2 of 84 bare ones, 19 of 108 of the journey's and the usual OpenTelemetry
// setup's; bench/NOTES.md), the three property definitions at the end of the object literal in Node's
// `process.nextTick` (task_queues.js: `[async_context_frame]`, `callback`, `args`) end up with
// MEGAMORPHIC inline caches instead of MONOMORPHIC ones, and stay so for the process's life.
// nextTick then costs ≈ 2 µs more per request on `GET /` (≈ 15 % of a bare request), which is what the
// bench's "slow processes" were (bench/NOTES.md, thirteenth session: every slow process checked had it,
// no fast one did). A bare twin cannot cancel it, since it hits one process of a pair.
//
// How often it happens depends on what the process runs: in the thirteenth session's full run, 4 of the usual
// OpenTelemetry setup's 6 processes, 3 of the journey's 12, and 1 of 27 bare twins. Why it happens, and the
// fix every bench server now applies (src/tick-shape.ts: hold one tick object, so its hidden classes are never
// freed and rebuilt), were found in the seventeenth session. The bench still counts such processes per
// variant rather than leaving them out, and so checks the fix in every run.
//
// No public API reports an inline cache's state; V8's %DebugPrint of a function lists its feedback slots.
// So the bench starts every server with --allow-natives-syntax, and on SIGWINCH bench/server.ts prints
// nextTick's feedback to its stdout (a file the bench reads after the server exits: V8 writes it through C
// stdio, which a file only sees flushed at exit).

/** Written by a server on SIGWINCH, before its DebugPrint output. */
export const TICK_STATE_MARK = 'BENCH-TICK-STATE'

/** In a bench server: print nextTick's feedback on SIGWINCH (needs --allow-natives-syntax; else prints nothing). */
export function reportTickStateOnSignal (): void {
  let print: ((f: unknown) => void) | undefined
  try {
    print = new Function('f', '%DebugPrint(f)') as (f: unknown) => void
  } catch {
    return // started without --allow-natives-syntax
  }
  process.on('SIGWINCH', () => {
    process.stdout.write(`${TICK_STATE_MARK}\n`)
    print!(process.nextTick)
  })
}

export type TickState = 'normal' | 'slow' | 'unknown'

/**
 * Reads a server's stdout: slow when any of nextTick's DefineKeyedOwnPropertyInLiteral slots is
 * megamorphic; unknown when nothing readable was printed (no natives syntax, killed before flushing, or a
 * V8 whose DebugPrint no longer lists these slots).
 */
export function tickStateOf (stdout: string): TickState {
  const at = stdout.lastIndexOf(TICK_STATE_MARK)
  if (at === -1) return 'unknown'
  const slots = stdout.slice(at).split('\n').filter(l => l.includes('DefineKeyedOwnPropertyInLiteral'))
  if (slots.length === 0) return 'unknown'
  return slots.some(l => l.includes('MEGAMORPHIC')) ? 'slow' : 'normal'
}
