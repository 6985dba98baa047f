// Reading traces out of the in-memory exporter.
import assert from 'node:assert/strict'
import type { ReadableSpan } from '@opentelemetry/sdk-trace'

export const ms = (t: [number, number]): number => t[0] * 1e3 + t[1] / 1e6
export const durationMs = (s: ReadableSpan): number => ms(s.endTime) - ms(s.startTime)

export interface Waterfall { root: ReadableSpan, stages: ReadableSpan[] }

/** Request roots (SERVER spans that are not connection spans) whose route attribute matches. */
export function roots (spans: ReadableSpan[], route?: string): ReadableSpan[] {
  return spans.filter(s => s.kind === 1 && s.name !== 'journey.connection' && (route === undefined || s.attributes['http.route'] === route))
}

export function waterfall (spans: ReadableSpan[], root: ReadableSpan): Waterfall {
  const id = root.spanContext().spanId
  const stages = spans
    .filter(s => s.parentSpanContext?.spanId === id && s.name.startsWith('journey.'))
    .sort((a, b) => ms(a.startTime) - ms(b.startTime))
  return { root, stages }
}

/** The first waterfall of `route` the exporter holds, waiting up to 3 s for it (spans leave at the response's end). */
export async function nextWaterfall (exporter: { getFinishedSpans: () => ReadableSpan[] }, route: string): Promise<Waterfall> {
  for (const until = Date.now() + 3000; ;) {
    const spans = exporter.getFinishedSpans()
    const root = roots(spans, route)[0]
    if (root !== undefined) return waterfall(spans, root)
    if (Date.now() > until) throw new Error(`no trace for ${route}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

export const stageNames = (w: Waterfall): string[] => w.stages.map(s => s.name.slice('journey.'.length))
export const stage = (w: Waterfall, name: string): ReadableSpan | undefined => w.stages.find(s => s.name === `journey.${name}`)

/** The names of `s`'s ancestors, parent first, within `spans`; '(missing)' where a parent is not among them. */
export function ancestry (spans: ReadableSpan[], s: ReadableSpan): string[] {
  const names: string[] = []
  for (let p = s.parentSpanContext?.spanId; p !== undefined;) {
    const parent = spans.find(x => x.spanContext().spanId === p)
    if (parent === undefined) { names.push('(missing)'); break }
    names.push(parent.name)
    p = parent.parentSpanContext?.spanId
  }
  return names
}

/** The properties every waterfall must have, whatever the request. */
export function assertWellFormed (w: Waterfall, precision = 'default'): void {
  const names = stageNames(w)
  assert.equal(new Set(names).size, names.length, `each stage once: ${names}`)
  const order = ['accept', 'tls', 'read', 'decrypt', 'parse', 'decode', 'handler', 'serialize', 'write']
  assert.deepEqual([...names].sort((a, b) => order.indexOf(a) - order.indexOf(b)), names, 'stages in journey order')
  const rs = ms(w.root.startTime)
  const re = ms(w.root.endTime)
  let covered = 0
  let prevEnd = -Infinity
  for (const s of w.stages) {
    const d = durationMs(s)
    assert.ok(d >= 0, `${s.name} duration ${d} >= 0`)
    assert.ok(ms(s.startTime) >= rs - 1e-3 && ms(s.endTime) <= re + 1e-3, `${s.name} inside the root`)
    assert.ok(ms(s.startTime) >= prevEnd - 1e-3, `${s.name} does not overlap the stage before`)
    prevEnd = ms(s.endTime)
    covered += d
  }
  const gaps = Number(w.root.attributes['journey.gap.hooks_ms']) + Number(w.root.attributes['journey.gap.before_request_ms']) +
    Number(w.root.attributes['journey.gap.pipelined_ms'] ?? 0) + Number(w.root.attributes['journey.gap.error_handler_ms'] ?? 0)
  assert.ok(Math.abs(covered + gaps - durationMs(w.root)) < 0.01, `stages ${covered} + gaps ${gaps} = root ${durationMs(w.root)}`)
  for (const [k, v] of Object.entries(w.root.attributes)) {
    // The clock resolves nanoseconds; more digits than that would be float noise, not a measurement.
    if (k.startsWith('journey.gap.')) assert.equal(v, Math.round(Number(v) * 1e6) / 1e6, `${k}=${String(v)}: to the nanosecond`)
  }
  assert.equal(w.root.attributes['journey.precision'], precision)
}
