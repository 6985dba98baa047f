// The benchmark's variants, named once for bench/server.ts (which builds them) and the scripts that run them.
export const VARIANTS = [
  'bare', 'journey-metrics', 'journey-fine', 'journey-1pct', 'journey-100pct',
  'usual-100pct', 'usual-10pct', 'fastify-metrics', 'prom-client-histogram'
] as const
export type VariantName = typeof VARIANTS[number]

/**
 * The variants measured on HTTP/2 too (bench/server.ts's BENCH_HTTP2). Not the usual setup:
 * instrumentation-http does not instrument node:http2, so it would be @fastify/otel alone, not what its
 * rows mean. Not fine mode: its cipher tap needs a server listening through journey.listenerFor(), which
 * Fastify's own HTTP/2 server does not.
 */
export const HTTP2_VARIANTS: readonly VariantName[] = ['bare', 'journey-metrics', 'journey-1pct', 'journey-100pct', 'prom-client-histogram', 'fastify-metrics']

/** A VARIANTS=a,b list (or `fallback` when unset), every name checked: a typo stops the script before it starts servers. */
export function variantsFrom (list: string | undefined, fallback: string): VariantName[] {
  const names = (list ?? fallback).split(',') as VariantName[]
  for (const v of names) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v}: one of ${VARIANTS.join(', ')}`)
  return names
}
