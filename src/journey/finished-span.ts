// A span that is already over, as a plain ReadableSpan handed straight to the SDK's span processors.
//
// Why not tracer.startSpan(): the journey builds its spans after the request has finished — times, parent
// and sampling decision are all known — yet the SDK's path runs a sampler, an id generator, two rounds of
// attribute cleaning, a context lookup, clock reads and the processors' onStart for each one. Profiled at
// 100 % sampling that was ≈ 1.5 µs per stage span, about as much as exporting it, and ≈ 2–3 µs for the
// request span (bench/NOTES.md). This object holds exactly what the SDK's own Span would hold after end(),
// so an exporter cannot tell the two apart (test/journey/spans-direct.test.ts compares them field by field
// and on the wire). Processors see it at onEnd only: nothing can be added to a span that is already over.
import { SpanStatusCode, type Attributes, type HrTime, type Link, type SpanContext, type SpanKind, type SpanStatus } from '@opentelemetry/api'
import { hrTimeDuration, millisToHrTime, type InstrumentationScope } from '@opentelemetry/core'
import type { Resource } from '@opentelemetry/resources'
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace'

const NO_LINKS: Link[] = []
const NO_EVENTS: TimedEvent[] = []
/** The status of a span nobody set one on. */
export const UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET })

/** Resource and scope the SDK gave a span of the journey's tracer: the spans built here share them, so exporters group them together. */
export interface SpanOrigin { resource: Resource, instrumentationScope: InstrumentationScope }

export class FinishedSpan implements ReadableSpan {
  readonly name: string
  readonly kind: SpanKind
  readonly parentSpanContext: SpanContext | undefined
  /** Start and end in epoch milliseconds, as the journey measured them; startTime and endTime derive from them. */
  readonly startMs: number
  readonly endMs: number
  readonly status: SpanStatus
  readonly attributes: Attributes
  readonly links: Link[]
  readonly events = NO_EVENTS
  readonly ended = true
  readonly resource: Resource
  readonly instrumentationScope: InstrumentationScope
  readonly droppedAttributesCount = 0
  readonly droppedEventsCount = 0
  readonly droppedLinksCount = 0
  private readonly context: SpanContext

  constructor (origin: SpanOrigin, context: SpanContext, parent: SpanContext | undefined, name: string, kind: SpanKind,
    startEpochMs: number, endEpochMs: number, attributes: Attributes | undefined, links: Link[] | undefined, status: SpanStatus) {
    this.context = context
    this.parentSpanContext = parent
    this.name = name
    this.kind = kind
    this.startMs = startEpochMs
    this.endMs = endEpochMs
    this.attributes = attributes ?? {}
    this.links = links ?? NO_LINKS
    this.status = status
    this.resource = origin.resource
    this.instrumentationScope = origin.instrumentationScope
  }

  // The same conversion the SDK applies to an epoch-millisecond start or end time, made when a processor
  // asks. Why not made at construction: the journey's own serializer writes the times from the milliseconds
  // (otlp-trace-serializer.ts), so the three pairs were made only to wait for the batch. Enough of them
  // lived through a young-generation collection that V8 began allocating them in the old generation, where
  // they died; without them, peak RSS at 100 % sampling fell from ≈ 405 to ≈ 300 MB in 15 s of load and the
  // CPU per request by 2–6 % (paired, bench:ab; bench/NOTES.md, sixteenth session).
  get startTime (): HrTime { return millisToHrTime(this.startMs) }
  get endTime (): HrTime { return millisToHrTime(this.endMs) }
  get duration (): HrTime { return hrTimeDuration(this.startTime, this.endTime) }

  spanContext (): SpanContext { return this.context }
}

/** The resource and scope of a span the SDK built, or undefined when it is not an SDK span (a no-op or foreign tracer). */
export function originOf (span: object): SpanOrigin | undefined {
  const s = span as Partial<ReadableSpan>
  return s.resource !== undefined && s.instrumentationScope !== undefined
    ? { resource: s.resource, instrumentationScope: s.instrumentationScope }
    : undefined
}
