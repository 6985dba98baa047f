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
  readonly startTime: HrTime
  readonly endTime: HrTime
  readonly duration: HrTime
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
    // The same conversion the SDK applies to an epoch-millisecond start or end time.
    this.startTime = millisToHrTime(startEpochMs)
    this.endTime = millisToHrTime(endEpochMs)
    this.duration = hrTimeDuration(this.startTime, this.endTime)
    this.attributes = attributes ?? {}
    this.links = links ?? NO_LINKS
    this.status = status
    this.resource = origin.resource
    this.instrumentationScope = origin.instrumentationScope
  }

  spanContext (): SpanContext { return this.context }
}

/** The resource and scope of a span the SDK built, or undefined when it is not an SDK span (a no-op or foreign tracer). */
export function originOf (span: object): SpanOrigin | undefined {
  const s = span as Partial<ReadableSpan>
  return s.resource !== undefined && s.instrumentationScope !== undefined
    ? { resource: s.resource, instrumentationScope: s.instrumentationScope }
    : undefined
}
