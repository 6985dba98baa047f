// The standard OTEL_* variables are not validated like the app's own (config.ts stops the process on a bad
// value): the specification asks an SDK to fall back to its defaults instead. That fallback is silent, so a
// typo meant no traces and no word why. Here each fallback is said once at start-up, and the SDK's own
// diagnostics (OpenTelemetry's `diag`, a no-op unless someone installs a logger) go to the app's log.
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api'
import { diagLogLevelFromString } from '@opentelemetry/core'
import type { Logger } from 'pino'
import { samplerEnvProblems } from './journey/sampling.ts'

const EXPORTERS = ['otlp', 'console', 'none']
const PROTOCOLS = ['http/protobuf', 'http/json', 'grpc']

/** Every OTEL_* value this process had to ignore or cannot use, one sentence each. Pure. */
export function otelEnvProblems (env: Record<string, string | undefined>): string[] {
  const problems = samplerEnvProblems(env)
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map(s => s.trim().toLowerCase()).filter(Boolean)
  const unknown = exporters.filter(e => !EXPORTERS.includes(e))
  if (unknown.length > 0) {
    const left = exporters.filter(e => EXPORTERS.includes(e) && e !== 'none')
    problems.push(`OTEL_TRACES_EXPORTER: ${unknown.map(u => `"${u}"`).join(', ')} not supported here (${EXPORTERS.join(', ')}); ${left.length > 0 ? `exporting with ${left.join(', ')} only` : 'tracing is off'}`)
  }
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const v = env[name]?.trim().toLowerCase()
    if (v !== undefined && v !== '' && !PROTOCOLS.includes(v)) problems.push(`${name}="${env[name]}" is not an OTLP protocol (${PROTOCOLS.join(', ')}); using http/protobuf`)
  }
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT']) {
    const v = env[name]?.trim()
    if (v === undefined || v === '') continue
    const url = URL.parse(v)
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      problems.push(`${name}="${v}" is not an http(s) URL: spans cannot be exported (they stay queued, then are counted as dropped)`)
    }
  }
  for (const name of ['OTEL_BSP_MAX_QUEUE_SIZE', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 'OTEL_BSP_SCHEDULE_DELAY', 'OTEL_BSP_EXPORT_TIMEOUT']) {
    const v = env[name]
    if (v !== undefined && v.trim() !== '' && !(Number.isInteger(Number(v)) && Number(v) > 0)) problems.push(`${name}="${v}" is not a positive integer; using the default (README's configuration table)`)
  }
  return problems
}

/**
 * Installs a `diag` logger writing to `log` (as `component: "opentelemetry"`) at OTEL_LOG_LEVEL, default
 * warn; an OTEL_LOG_LEVEL that is set wins over LOG_LEVEL for these lines, as someone asking the SDK for
 * debug output expects to see it. A warning or error is written at most once a minute, since some repeat
 * per export.
 */
export function routeDiagnostics (log: Logger, env: Record<string, string | undefined>): void {
  const set = diagLogLevelFromString(env.OTEL_LOG_LEVEL)
  const level = set ?? DiagLogLevel.WARN
  const out = log.child({ component: 'opentelemetry' }, set === undefined ? {} : { level: PINO_LEVEL[set] ?? 'warn' })
  const last = new Map<string, number>()
  const write = (pinoLevel: 'error' | 'warn' | 'info' | 'debug' | 'trace') => (message: string, ...args: unknown[]): void => {
    if (pinoLevel === 'error' || pinoLevel === 'warn') {
      const t = performance.now()
      if (t - (last.get(message) ?? -Infinity) < 60_000) return
      if (last.size >= 100) last.clear() // bounded: messages are few, but some embed values
      last.set(message, t)
    }
    out[pinoLevel]({ args: args.length > 0 ? args.map(a => a instanceof Error ? a.message : a) : undefined }, `OpenTelemetry: ${message}`)
  }
  const logger: DiagLogger = { error: write('error'), warn: write('warn'), info: write('info'), debug: write('debug'), verbose: write('trace') }
  diag.setLogger(logger, { logLevel: level, suppressOverrideMessage: true })
}

const PINO_LEVEL: Partial<Record<DiagLogLevel, string>> = {
  [DiagLogLevel.NONE]: 'silent',
  [DiagLogLevel.ERROR]: 'error',
  [DiagLogLevel.WARN]: 'warn',
  [DiagLogLevel.INFO]: 'info',
  [DiagLogLevel.DEBUG]: 'debug',
  [DiagLogLevel.VERBOSE]: 'trace',
  [DiagLogLevel.ALL]: 'trace'
}
