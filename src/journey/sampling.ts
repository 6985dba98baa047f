// Head sampling from the standard OTEL_TRACES_SAMPLER variables, plus what lets the journey build
// spans after the fact: a sampler that honours the journey's own decision (head or tail keep), and an
// id generator that can hand out ids chosen earlier (so the handler's spans, created while the request
// runs, already point at the request span that is only built when the request ends).
import { createContextKey, ROOT_CONTEXT, SamplingDecision, trace, type Attributes, type Context, type Link, type SpanKind } from '@opentelemetry/api'
import {
  AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler,
  type IdGenerator, type Sampler, type SamplingResult
} from '@opentelemetry/sdk-trace'

/** Mirrors the SDK's env handling (sdk-node does not export it); unknown values fall back to the spec default. */
export function samplerFromEnv (env: Record<string, string | undefined> = process.env): Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase()
  const ratio = ratioArg(env.OTEL_TRACES_SAMPLER_ARG) ?? 1
  switch (name) {
    case 'always_on': return withRootRatio(new AlwaysOnSampler(), 1)
    case 'always_off': return withRootRatio(new AlwaysOffSampler(), 0)
    case 'traceidratio': return withRootRatio(new TraceIdRatioBasedSampler(ratio), ratio)
    case 'parentbased_always_off': return withRootRatio(new ParentBasedSampler({ root: new AlwaysOffSampler() }), 0)
    case 'parentbased_traceidratio': return withRootRatio(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }), ratio)
    default: return withRootRatio(new ParentBasedSampler({ root: new AlwaysOnSampler() }), 1)
  }
}

/** OTEL_TRACES_SAMPLER_ARG as a ratio; undefined when unset, empty or not a number from 0 to 1. */
function ratioArg (raw: string | undefined): number | undefined {
  const v = raw?.trim()
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  return Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined
}

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']

/**
 * What samplerFromEnv had to ignore, one sentence each, for a start-up warning: the specification asks an
 * SDK to fall back to the defaults on a bad value rather than fail, which is silent unless someone says so.
 */
export function samplerEnvProblems (env: Record<string, string | undefined> = process.env): string[] {
  const problems: string[] = []
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase()
  if (name !== undefined && name !== '' && !SAMPLERS.includes(name)) {
    problems.push(`OTEL_TRACES_SAMPLER="${env.OTEL_TRACES_SAMPLER}" is not supported here (${SAMPLERS.join(', ')}); using parentbased_always_on`)
  }
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim()
  if (name?.endsWith('traceidratio') === true && arg !== undefined && arg !== '' && ratioArg(arg) === undefined) {
    problems.push(`OTEL_TRACES_SAMPLER_ARG="${arg}" is not a ratio from 0 to 1; sampling every trace (1)`)
  }
  return problems
}

// Samplers built above whose decision for a request without a parent is the SDK's trace-id ratio rule.
const rootRatios = new WeakMap<Sampler, number>()
function withRootRatio (sampler: Sampler, ratio: number): Sampler {
  rootRatios.set(sampler, ratio)
  return sampler
}

/** The share of requests without a parent that a sampler from samplerFromEnv keeps; undefined for other samplers. */
export function rootRatioOf (sampler: Sampler): number | undefined {
  return rootRatios.get(sampler)
}

/**
 * The head decision for a request with no incoming trace context, without building a trace id string
 * for the requests it drops. Same rule as the SDK's TraceIdRatioBasedSampler (a trace id is sampled when
 * the XOR of its four 32-bit words is below ratio × 2³²), so a sampled id is one the SDK would also have
 * sampled — but the 32-character hex string, the most expensive part at 1 %, is made only for the 1 %.
 * The decision itself is one random draw (that XOR is a uniform 32-bit number for a random id); the id of
 * a sampled request is then drawn among the ids the rule samples: three random words, and the fourth
 * chosen so the XOR is a random number below the bound. Four draws per request became one (callgrind:
 * ≈ 300 instructions a request at 1 %). Returns undefined for samplers it does not know (a custom
 * sampler passed to journeyTracing), which then take the generic path.
 */
export function rootDecider (sampler: Sampler): (() => string | undefined) | undefined {
  const ratio = rootRatios.get(sampler)
  if (ratio === undefined) return undefined
  const upper = ratio >= 1 ? 2 ** 32 : Math.floor(ratio * 0xffffffff)
  return () => {
    if (upper === 0 || Math.random() * 2 ** 32 >= upper) return undefined
    let w0 = Math.random() * 2 ** 32 >>> 0
    const w1 = Math.random() * 2 ** 32 >>> 0
    const w2 = Math.random() * 2 ** 32 >>> 0
    if ((w0 | w1 | w2) === 0) w0 = 1 // an all-zero trace id is invalid
    const w3 = ((Math.random() * upper >>> 0) ^ w0 ^ w1 ^ w2) >>> 0
    ID_BYTES.writeUInt32BE(w0, 0)
    ID_BYTES.writeUInt32BE(w1, 4)
    ID_BYTES.writeUInt32BE(w2, 8)
    ID_BYTES.writeUInt32BE(w3, 12)
    return ID_BYTES.toString('hex') // one native call: cheaper than four toString(16) + padStart
  }
}

const ID_BYTES = Buffer.alloc(16)

const JOURNEY_DECIDED = createContextKey('request-journey decided')
const JOURNEY_HANDLER = createContextKey('request-journey handler')

/** Marks a context whose spans the journey already decided to keep. */
export function decided (ctx: Context): Context {
  return ctx.setValue(JOURNEY_DECIDED, true)
}

// Values of the handler mark. HANDLER: a context a request's handler runs in; spans started in it with no
// span above are not recorded (an unsampled request's). UNRECORDED: nothing started below it is recorded,
// whatever the parent says (a sampled request the export queue had no room for).
const HANDLER = 1
const UNRECORDED = 2

/**
 * The context an unsampled request's handler runs in (once the app starts spans of its own): no span in
 * it, only the mark. Without it the handler's spans had no parent, so the head sampler decided them again
 * as roots of traces of their own — at 20 % sampling a fifth of the unsampled requests' spans became stray
 * one-span traces.
 */
export const UNSAMPLED_ROOT: Context = ROOT_CONTEXT.setValue(JOURNEY_HANDLER, HANDLER)

/**
 * Marks a context the journey runs a request's handler in. The sampler does not record spans started in
 * a marked context with no span in it (an unsampled request's), and the next request never takes a marked
 * context for another instrumentation's server span should it still be active when Node emits that request.
 */
export function handlerContext (ctx: Context): Context {
  return ctx === ROOT_CONTEXT ? UNSAMPLED_ROOT : ctx.setValue(JOURNEY_HANDLER, HANDLER)
}

/**
 * The context for the handler of a request that was sampled but runs untraced (the export queue had no
 * room at its start). Its spans are not recorded even under a sampled parent, but the parent's trace id
 * still reaches downstream calls — flagged not sampled, which is the truth for this hop — instead of
 * nothing at all, which would make every downstream service start traces of its own.
 */
export function untracedContext (parent: Context): Context {
  return parent === ROOT_CONTEXT ? UNSAMPLED_ROOT : parent.setValue(JOURNEY_HANDLER, UNRECORDED)
}

export function isHandlerContext (ctx: Context): boolean {
  return ctx.getValue(JOURNEY_HANDLER) !== undefined
}

const NOT_RECORD: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD })
const RECORD_AND_SAMPLED: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED })

/**
 * The provider's sampler: the journey's own spans are kept as decided; spans started in an unsampled
 * request (with no span of their own above them) are not recorded; every other span follows `inner`.
 * (So a span a handler starts with `root: true`, which drops the span above it, is not recorded either.)
 */
export class JourneySampler implements Sampler {
  readonly inner: Sampler
  /**
   * Set when a span that is not the journey's own is first started. Until then the journey runs unsampled
   * requests' handlers with no context at all, since entering one costs ≈ 0.2 µs per request (measured
   * here: context.with 220–240 ns against 11–16 ns for a plain call); from then on in UNSAMPLED_ROOT. So
   * only the first span the app ever starts is decided the old way, as a root, should it be started in an
   * unsampled request.
   */
  appSpans = false
  constructor (inner: Sampler) { this.inner = inner }
  shouldSample (ctx: Context, traceId: string, name: string, kind: SpanKind, attrs: Attributes, links: Link[]): SamplingResult {
    if (ctx.getValue(JOURNEY_DECIDED) === true) return RECORD_AND_SAMPLED
    this.appSpans = true
    const mark = ctx.getValue(JOURNEY_HANDLER)
    if (mark === UNRECORDED || (mark === HANDLER && trace.getSpanContext(ctx) === undefined)) return NOT_RECORD
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
