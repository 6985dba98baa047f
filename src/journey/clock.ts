// One monotonic clock for every stage mark, and the epoch time a mark stands for.
// performance.now() is monotonic, sub-microsecond and allocation-free (hrtime.bigint allocates a BigInt).
//
// OpenTelemetry wants epoch times, and the SDK stamps the spans an app starts itself with the wall clock
// (Date.now() at their start). The epoch a mark maps to starts at performance.timeOrigin, and follows the
// wall clock when it is stepped — NTP's first sync after a service started at boot, a VM or laptop
// resumed, an operator's `date -s` — where the monotonic clock is not. Anchored once, every journey span
// would stay off by the step for the process's life, and the app's own spans (a database call in the
// handler) would sit that far outside their parent's handler stage.

export const now: () => number = performance.now.bind(performance)

let origin = performance.timeOrigin
let checkedAt = -Infinity
/** How often, at most, the wall clock is compared (only when spans are built: sampled or kept requests). */
const CHECK_EVERY_MS = 250
// Date.now() counts whole milliseconds, so an unstepped wall clock reads within half a millisecond of the
// middle of its millisecond; only a larger difference is a step. (NTP's slewing moves both clocks alike.)
const STEP_MS = 2
/** Reads of the two clocks further apart than this were interrupted: their comparison is not trusted. */
const MAX_READ_MS = 0.25

/** A monotonic mark (ms since timeOrigin) as epoch milliseconds with sub-ms precision. */
export function toEpochMs (mark: number): number {
  return origin + mark
}

/**
 * Re-anchors toEpochMs() on the wall clock if it was stepped; called before a request's or connection's
 * spans are built, so all of one trace's times come from one anchor. `recent` is a mark from about now
 * (the request's end): the clocks are read only when the last check is older than CHECK_EVERY_MS.
 */
export function followWallClock (recent: number): void {
  if (recent - checkedAt < CHECK_EVERY_MS) return
  // The monotonic clock is read on both sides of the wall clock: a thread descheduled between two reads
  // (a busy core, a VM's vCPU taken away) would otherwise see the time it was away as a step, and every
  // span of the next CHECK_EVERY_MS would sit that far off. Such a comparison is dropped; the next span
  // build compares again.
  const before = now()
  const wall = Date.now()
  const after = now()
  if (after - before > MAX_READ_MS) return
  checkedAt = after
  const drift = wall + 0.5 - (origin + (before + after) / 2)
  if (drift > STEP_MS || drift < -STEP_MS) origin += drift
}
