// Spending a known time on this thread, as a handler, hook, parser or validator computing on the event loop
// would: the tests that check where such time lands (a stage, a gap, the handler's synchronous part).

/** Busy-waits `ms` on the monotonic clock: the event loop serves nothing else meanwhile. */
export function busy (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until);
}
