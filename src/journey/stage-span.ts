// A finished stage span as a plain ReadableSpan, handed straight to the SDK's span processors.
//
// Why not tracer.startSpan() for every stage: a stage span is born finished — its times, parent and
// sampling decision are already known when the request's record is published — yet the SDK's path runs a
// sampler, an id generator, two rounds of attribute cleaning, a context lookup, clock reads and the
// processors' onStart for each one. Profiled at 100 % sampling that was ≈ 1.5 µs per stage span, about as
// much as exporting it. This object holds exactly what the SDK's own Span would hold after end(), so an
// exporter cannot tell the two apart (test/journey/spans-direct.test.ts compares them field by field).
// Processors see it at onEnd only: nothing can be added to a span that is already over.
import { SpanStatusCode, type Attributes, type HrTime, type Link, type SpanContext, type SpanKind, type SpanStatus } from '@opentelemetry/api'
import { hrTimeDuration, millisToHrTime, type InstrumentationScope } from '@opentelemetry/core'
import type { Resource } from '@opentelemetry/resources'
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace'

const NO_LINKS: Link[] = []
const NO_EVENTS: TimedEvent[] = []
const UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET })

/** Resource and scope the SDK gave the request span: its stage spans share them, so exporters group them together. */
export interface SpanOrigin { resource: Resource, instrumentationScope: InstrumentationScope }

export class StageSpan implements ReadableSpan {
  readonly name: string
  readonly kind: SpanKind
  readonly parentSpanContext: SpanContext
  readonly startTime: HrTime
  readonly endTime: HrTime
  readonly duration: HrTime
  readonly status: SpanStatus
  readonly attributes: Attributes
  readonly links = NO_LINKS
  readonly events = NO_EVENTS
  readonly ended = true
  readonly resource: Resource
  readonly instrumentationScope: InstrumentationScope
  readonly droppedAttributesCount = 0
  readonly droppedEventsCount = 0
  readonly droppedLinksCount = 0
  private readonly context: SpanContext

  constructor (origin: SpanOrigin, parent: SpanContext, spanId: string, name: string, kind: SpanKind,
    startEpochMs: number, endEpochMs: number, attributes: Attributes | undefined, errorMessage: string | undefined) {
    this.context = { traceId: parent.traceId, spanId, traceFlags: parent.traceFlags, traceState: parent.traceState }
    this.parentSpanContext = parent
    this.name = name
    this.kind = kind
    // The same conversion the SDK applies to an epoch-millisecond start or end time.
    this.startTime = millisToHrTime(startEpochMs)
    this.endTime = millisToHrTime(endEpochMs)
    this.duration = hrTimeDuration(this.startTime, this.endTime)
    this.attributes = attributes ?? {}
    this.status = errorMessage === undefined ? UNSET : { code: SpanStatusCode.ERROR, message: errorMessage }
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
