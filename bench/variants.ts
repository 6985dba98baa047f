// The benchmark's variants, named once for bench/server.ts (which builds them) and bench/run.ts (which runs them).
export const VARIANTS = [
  'bare', 'journey-metrics', 'journey-fine', 'journey-1pct', 'journey-100pct',
  'usual-100pct', 'usual-10pct', 'fastify-metrics', 'prom-client-histogram'
] as const
export type VariantName = typeof VARIANTS[number]
