// The benchmark's variants, named once for bench/server.ts (which builds them) and the scripts that run them.
export const VARIANTS = [
  'bare', 'journey-metrics', 'journey-fine', 'journey-1pct', 'journey-100pct',
  'usual-100pct', 'usual-10pct', 'fastify-metrics', 'prom-client-histogram'
] as const
export type VariantName = typeof VARIANTS[number]

/** A VARIANTS=a,b list (or `fallback` when unset), every name checked: a typo stops the script before it starts servers. */
export function variantsFrom (list: string | undefined, fallback: string): VariantName[] {
  const names = (list ?? fallback).split(',') as VariantName[]
  for (const v of names) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v}: one of ${VARIANTS.join(', ')}`)
  return names
}
