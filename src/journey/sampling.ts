// Head sampling from the standard OTEL_TRACES_SAMPLER variables, plus what lets the journey build
// spans after the fact: a sampler that honours the journey's own decision (head or tail keep), and an
// id generator that can hand out ids chosen earlier (so the handler's spans, created while the request
// runs, already point at the request span that is only built when the request ends).
import { createContextKey, SamplingDecision, type Attributes, type Context, type Link, type SpanKind } from '@opentelemetry/api'
import {
  AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler,
  type IdGenerator, type Sampler, type SamplingResult
} from '@opentelemetry/sdk-trace'

/** Mirrors the SDK's env handling (sdk-node does not export it); unknown values fall back to the spec default. */
export function samplerFromEnv (env: Record<string, string | undefined> = process.env): Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase()
  const argRaw = env.OTEL_TRACES_SAMPLER_ARG?.trim()
  const arg = argRaw === undefined || argRaw === '' ? 1 : Number(argRaw)
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1
  switch (name) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio)
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) })
    default: return new ParentBasedSampler({ root: new AlwaysOnSampler() })
  }
}

const JOURNEY_DECIDED = createContextKey('request-journey decided')

/** Marks a context whose spans the journey already decided to keep. */
export function decided (ctx: Context): Context {
  return ctx.setValue(JOURNEY_DECIDED, true)
}

/** The provider's sampler: the journey's own spans are kept as decided; every other span follows `inner`. */
export class JourneySampler implements Sampler {
  readonly inner: Sampler
  constructor (inner: Sampler) { this.inner = inner }
  shouldSample (ctx: Context, traceId: string, name: string, kind: SpanKind, attrs: Attributes, links: Link[]): SamplingResult {
    if (ctx.getValue(JOURNEY_DECIDED) === true) return { decision: SamplingDecision.RECORD_AND_SAMPLED }
    return this.inner.shouldSample(ctx, traceId, name, kind, attrs, links)
  }

  toString (): string { return `JourneySampler{${this.inner.toString()}}` }
}

/**
 * Random ids, except when the next id was chosen in advance. The SDK's Tracer asks for exactly one span id
 * (and a trace id when there is no valid parent) inside the synchronous startSpan call, so a preset is used
 * by the very span it was set for; test/journey/spans.test.ts fails loudly if an SDK upgrade changes that.
 */
export class PresetIdGenerator implements IdGenerator {
  private readonly random = new RandomIdGenerator()
  private nextTraceId: string | undefined
  private nextSpanId: string | undefined

  preset (traceId: string | undefined, spanId: string | undefined): void {
    this.nextTraceId = traceId
    this.nextSpanId = spanId
  }

  generateTraceId (): string {
    const id = this.nextTraceId
    if (id === undefined) return this.random.generateTraceId()
    this.nextTraceId = undefined
    return id
  }

  generateSpanId (): string {
    const id = this.nextSpanId
    if (id === undefined) return this.random.generateSpanId()
    this.nextSpanId = undefined
    return id
  }
}
