// The tail rules' rate limit. A request kept by a rule (slow, error) costs a whole trace — its spans built,
// its exception and stack recorded, exported — and in a storm every request qualifies: a database down makes
// every request a fast 500, a slow dependency every request slow. Keeping them all, a server answering 500s
// at 1 % head sampling spent 2.9 times the CPU per request it spends with this limit (bench:ab on its fail
// route: 85 against 29 µs of user CPU a request; the limit costs 1.04 times no error rule), so its telemetry
// would take it down just when it is failing. So each rule keeps at most so many requests a second — a few
// hundred traces of a storm say what it is — and its metrics count every request as before.

/** Whether a request ending at `at` (ms, the journey's monotonic clock) may be kept: takes one if so. */
export type KeepLimiter = (at: number) => boolean

/**
 * A token bucket: `perSecond` keeps a second, holding one second's worth (at least one), so a burst after
 * a quiet spell is kept whole and a steady storm is cut to the rate. Infinity: no limit; 0: keeps nothing.
 * Records may end slightly out of order (a connection's close cuts its requests at one moment): an earlier
 * `at` than the last adds nothing and takes from what is there.
 */
export function keepLimiter (perSecond: number): KeepLimiter {
  if (perSecond === Infinity) return () => true
  if (perSecond === 0) return () => false
  const capacity = Math.max(1, perSecond)
  const perMs = perSecond / 1000
  let tokens = capacity
  let last = NaN
  return (at) => {
    if (!(at <= last)) {
      if (last === last) tokens = Math.min(capacity, tokens + (at - last) * perMs)
      last = at
    }
    if (tokens < 1) return false
    tokens -= 1
    return true
  }
}

/** A limit from options or the environment: a number ≥ 0, or Infinity; anything else is a mistake to say. */
export function checkKeepLimit (perSecond: number): number {
  if (perSecond === Infinity || (Number.isFinite(perSecond) && perSecond >= 0)) return perSecond
  throw new Error(`request-journey: keepLimitPerSecond must be a number ≥ 0 (or Infinity for no limit), not ${String(perSecond)}`)
}
