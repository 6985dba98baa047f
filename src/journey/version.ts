// This instrumentation's own name and version, for the instrumentation scope of its spans (Jaeger shows them
// as otel.scope.name and otel.scope.version): which release measured a trace, as every OpenTelemetry
// instrumentation says of itself.
import { readFileSync } from 'node:fs'
import { bundledInto } from './bundled.ts'

export const SCOPE_NAME = 'request-journey'

/**
 * The version in the package.json two folders up: this repository's from src/journey/, the package's from
 * lib/journey/ once packed. Read once, at load. None when bundled (the file next to the bundle may be the
 * app's own) or when that file is not ours.
 */
function ownVersion (): string | undefined {
  if (bundledInto !== undefined) return undefined
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown, version?: unknown }
    const ours = pkg.name === 'request-journey' || pkg.name === 'fastify-request-journey'
    return ours && typeof pkg.version === 'string' ? pkg.version : undefined
  } catch {
    return undefined
  }
}

export const SCOPE_VERSION: string | undefined = ownVersion()
