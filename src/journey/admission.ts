// The export queue's say over traces: whether a kept request's spans may be built at all, and the room a
// head-sampled request holds while it runs. Asked of the span processors that offer it (src/journey/span-pipeline.ts
// does); processors without it are assumed to have room.
import type { SpanProcessor } from '@opentelemetry/sdk-trace'

/**
 * What a span processor may offer so that a kept request's spans are exported whole or not at all: asked
 * before any span of the request is built, `admit` answers whether its queue can take `spans` more now (and
 * counts them as dropped when it cannot).
 *
 * `reserve` and `release` (optional, together) hold room for a head-sampled request from its start to its
 * end. Its trace id is in its log lines and its handler's spans are recorded as it runs, so refusing it at
 * the end would leave those pointing at a trace that never arrives; refused at the start instead, the
 * request runs untraced (and is admitted, or counted as dropped, at its end like a tail keep).
 */
export interface SpanAdmission {
  admit: (spans: number) => boolean
  reserve?: (spans: number) => boolean
  release?: (spans: number) => void
}

export interface Admission {
  /** Holds room for `spans` in every processor that can hold it; false (holding nothing) if one cannot. */
  reserve: (spans: number) => boolean
  /** Gives back room held by reserve(). */
  release: (spans: number) => void
  /** Whether `spans` may be built now: `held` when their room was reserved (only the others are asked then). */
  admit: (spans: number, held: boolean) => boolean
  /** Gives back all room still held (requests that will not be seen ending). */
  releaseAll: () => void
}

type Gate = SpanProcessor & SpanAdmission
type Holder = Gate & Required<SpanAdmission>

export function admissionOf (processors: SpanProcessor[] | undefined): Admission {
  // Found once rather than looked up on every kept request.
  const gates = (processors ?? []).filter((p): p is Gate => typeof (p as Partial<SpanAdmission>).admit === 'function')
  const holders = gates.filter((g): g is Holder => typeof g.reserve === 'function' && typeof g.release === 'function')
  const others = gates.filter(g => !holders.includes(g as Holder))
  let held = 0

  function admitted (spans: number, by: Gate[]): boolean {
    for (const g of by) if (!g.admit(spans)) return false
    return true
  }
  function release (spans: number): void {
    if (spans === 0) return
    held -= spans
    for (const h of holders) h.release(spans)
  }
  return {
    reserve (spans) {
      for (let i = 0; i < holders.length; i++) {
        if (holders[i]!.reserve(spans)) continue
        for (let j = 0; j < i; j++) holders[j]!.release(spans)
        return false
      }
      held += spans
      return true
    },
    release,
    admit: (spans, isHeld) => admitted(spans, isHeld ? others : gates),
    releaseAll: () => release(held)
  }
}
