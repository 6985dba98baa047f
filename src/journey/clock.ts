// One monotonic clock for every stage mark.
// performance.now() is monotonic, sub-microsecond and allocation-free (hrtime.bigint allocates a BigInt).
// OpenTelemetry wants epoch times; the SDK anchors on performance.timeOrigin too, so spans the handler
// creates itself and the spans built here from marks share one time base.

export const now: () => number = performance.now.bind(performance)

const ORIGIN = performance.timeOrigin

/** A monotonic mark (ms since timeOrigin) as epoch milliseconds with sub-ms precision. */
export function toEpochMs (mark: number): number {
  return ORIGIN + mark
}
