// Reading traces out of the in-memory exporter.
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
