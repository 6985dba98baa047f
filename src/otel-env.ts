// The standard OTEL_* variables are not validated like the app's own (config.ts stops the process on a bad
// value): the specification asks an SDK to fall back to its defaults instead. That fallback is silent, so a
// typo meant no traces and no word why. Here each fallback is said once at start-up, and the SDK's own
// diagnostics (OpenTelemetry's `diag`, a no-op unless someone installs a logger) go to the app's log.
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api'
import { diagLogLevelFromString, parseKeyPairsIntoRecord } from '@opentelemetry/core'
import type { Logger } from 'pino'
import { samplerEnvProblems } from './journey/sampling.ts'
import { NAME_LIKE, resourceAttributeFromEnv, resourceAttributesProblem } from './resource-env.ts'

// How telemetry.ts reads these variables, and what otelEnvProblems says about them: one reading of each.
type Env = Record<string, string | undefined>

const EXPORTERS = ['otlp', 'console', 'none']

/** OTEL_TRACES_EXPORTER's names (default otlp), as telemetry.ts builds exporters from them. */
export function traceExporterNames (env: Env): string[] {
  return (env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map(s => s.trim().toLowerCase()).filter(Boolean)
}

/**
 * OTEL_SDK_DISABLED as the specification and the SDK's getBooleanFromEnv read it: trimmed, any case; only
 * "true" turns the SDK off. `unknown` is a value that is neither true, false nor empty — read as false.
 */
export function sdkDisabled (env: Env): { disabled: boolean, unknown?: string } {
  const raw = (env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase()
  if (raw === 'true') return { disabled: true }
  return raw === '' || raw === 'false' ? { disabled: false } : { disabled: false, unknown: env.OTEL_SDK_DISABLED }
}

export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc'
const PROTOCOLS: OtlpProtocol[] = ['http/protobuf', 'http/json', 'grpc']

/**
 * OTEL_EXPORTER_OTLP_TRACES_PROTOCOL (or _METRICS_), else OTEL_EXPORTER_OTLP_PROTOCOL, else the spec's default
 * http/protobuf. The default matters for cost, not only compatibility: encoding a span as protobuf
 * took ≈ 2.5× less CPU than as OTLP JSON here, and the body is ≈ 2.6–3× smaller (measured here; docs/configuration.md).
 */
export function otlpProtocol (env: Env, signal: 'TRACES' | 'METRICS' = 'TRACES'): { protocol: OtlpProtocol, unknown?: string } {
  const raw = (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim().toLowerCase()
  if (raw === '') return { protocol: 'http/protobuf' }
  const known = PROTOCOLS.find(p => p === raw)
  return known !== undefined ? { protocol: known } : { protocol: 'http/protobuf', unknown: raw }
}

const METRIC_EXPORTERS = ['prometheus', 'otlp', 'console', 'none']

/**
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE for the pushed registry: `delta` and `lowmemory` both
 * mean deltas here (every counter and histogram of a registry counts as the synchronous kind those two agree
 * on), anything else cumulative, the default.
 */
export function metricsTemporality (env: Env): { temporality: 'cumulative' | 'delta', unknown?: string } {
  const raw = (env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE ?? '').trim().toLowerCase()
  if (raw === '' || raw === 'cumulative') return { temporality: 'cumulative' }
  if (raw === 'delta' || raw === 'lowmemory') return { temporality: 'delta' }
  return { temporality: 'cumulative', unknown: raw }
}

/**
 * OTEL_METRICS_EXPORTER's names. Unset means `prometheus` here, not the specification's `otlp`: /metrics is
 * always served for scraping, and pushing the same series too is a choice (metrics-export.ts).
 */
export function metricExporterNames (env: Env): string[] {
  return (env.OTEL_METRICS_EXPORTER ?? 'prometheus').split(',').map(s => s.trim().toLowerCase()).filter(Boolean)
}

const BSP = ['OTEL_BSP_MAX_QUEUE_SIZE', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 'OTEL_BSP_SCHEDULE_DELAY', 'OTEL_BSP_EXPORT_TIMEOUT']
const isPositiveInt = (v: string): boolean => Number.isInteger(Number(v)) && Number(v) > 0

/** A positive integer variable (the OTEL_BSP_* sizes and delays), else `def`; unset or empty means `def`. */
export function positiveIntFromEnv (env: Env, name: string, def: number): number {
  const v = env[name]
  return v !== undefined && v.trim() !== '' && isPositiveInt(v) ? Number(v) : def
}


/**
 * What the OTLP exporters silently make of an OTEL_EXPORTER_OTLP_*HEADERS value, one sentence per entry they
 * drop or cut. They read it as W3C baggage (`key=value`, comma-separated, values percent-encoded) with the
 * SDK's own parser, which skips an entry it cannot read — curl's `Authorization: Bearer …`, an empty value,
 * a `%` not followed by two hex digits — and ends a value at `;` (baggage metadata): the collector then sees
 * no such header, or a shorter one, and answers 401 with nothing in the log to say why. Judged with that
 * same parser, entry by entry, so this says exactly what the exporter does.
 */
export function otlpHeaderProblems (name: string, value: string): string[] {
  const entries = value.split(',').filter(e => e.trim() !== '') // empty entries drop nothing
  const problems: string[] = []
  entries.forEach((entry, i) => {
    const sep = entry.search(/[=:]/)
    const key = entry.slice(0, Math.max(sep, 0)).trim()
    const after = sep < 0 ? '' : entry.slice(sep + 1).trim()
    const which = `entry ${i + 1} of ${entries.length}${after !== '' && NAME_LIKE.test(key) ? ` (${key})` : ''}`
    if (Object.keys(parseKeyPairsIntoRecord(entry)).length === 0) {
      const why = key === '' ? 'it is not key=value' : entry[sep] === ':' ? 'a colon is not an equals sign' : after === '' ? 'its value is empty' : 'a % must begin a %XX escape; a literal % is written %25'
      problems.push(`${name}: ${which} cannot be read as key=value with a percent-encoded value (${why}), so the exporter sends no such header`)
    } else if (entry.slice(entry.indexOf('=') + 1).includes(';')) {
      problems.push(`${name}: the value of ${which} has a ';', where the exporter ends it (the rest is read as baggage metadata), so the header is sent cut short; write ; as %3B`)
    }
  })
  return problems
}

const SIGNAL_PATH = { TRACES: '/v1/traces', METRICS: '/v1/metrics' } as const

/** The variable whose endpoint a signal's exporter uses: its own when set, else the general one (maybe unset too). */
function endpointVariable (env: Env, signal: 'TRACES' | 'METRICS'): string {
  const own = `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`
  return (env[own]?.trim() ?? '') !== '' ? own : 'OTEL_EXPORTER_OTLP_ENDPOINT'
}

/** `v` as an http(s) URL, or undefined (unset, empty, or not one: the exporters can send nowhere then). */
function httpUrl (v: string | undefined): URL | undefined {
  const url = v === undefined || v.trim() === '' ? null : URL.parse(v.trim())
  return url !== null && (url.protocol === 'http:' || url.protocol === 'https:') ? url : undefined
}

/**
 * The two ways an OTLP/HTTP endpoint is commonly written wrong, each of which makes every export a 404 that
 * the log reports without saying why. The general OTEL_EXPORTER_OTLP_ENDPOINT gets the signal's path added
 * (`/v1/traces`), so one that already ends in a signal's path posts to `…/v1/traces/v1/traces`; a
 * signal's own endpoint is used as it is, so one with no path posts to `/`. (gRPC endpoints have no path.)
 */
function otlpPathProblems (env: Env, signals: ReadonlyArray<'TRACES' | 'METRICS'>): string[] {
  const problems: string[] = []
  const http = signals.filter(sig => otlpProtocol(env, sig).protocol !== 'grpc')
  const generalUsers: Array<'TRACES' | 'METRICS'> = []
  for (const sig of http) {
    const name = endpointVariable(env, sig)
    if (name === 'OTEL_EXPORTER_OTLP_ENDPOINT') { generalUsers.push(sig); continue }
    const url = httpUrl(env[name])
    if (url !== undefined && url.pathname === '/') {
      problems.push(`${name} is used as it is, with no ${SIGNAL_PATH[sig]} added, and has no path: ${sig === 'TRACES' ? 'spans' : 'metrics'} are posted to ${url.origin}/, where a collector takes none (set it to ${url.origin}${SIGNAL_PATH[sig]}, or set OTEL_EXPORTER_OTLP_ENDPOINT=${url.origin} instead)`)
    }
  }
  const general = httpUrl(env.OTEL_EXPORTER_OTLP_ENDPOINT)
  const ending = general === undefined ? null : /\/v1\/(traces|metrics|logs)\/?$/.exec(general.pathname)
  if (general !== undefined && ending !== null && generalUsers.length > 0) {
    const base = general.origin + general.pathname.slice(0, ending.index)
    const posted = generalUsers.map(sig => `${base}${ending[0].replace(/\/$/, '')}${SIGNAL_PATH[sig]}`).join(' and ')
    const own = generalUsers.map(sig => `OTEL_EXPORTER_OTLP_${sig}_ENDPOINT`).join(' and ')
    problems.push(`OTEL_EXPORTER_OTLP_ENDPOINT already ends in a signal's path, and the exporter adds ${generalUsers.map(sig => SIGNAL_PATH[sig]).join(' and ')} to it, posting to ${posted} (set it to ${base}, or set ${own} instead, taken as given)`)
  }
  return problems
}

/**
 * An endpoint on the other protocol's conventional port: 4317 is a collector's OTLP/gRPC receiver, 4318
 * its OTLP/HTTP one, and a gRPC exporter pointed at 4318 (or an HTTP one at 4317) fails every export with
 * a protocol error that does not say the port is the problem. A hint, since any port can be configured.
 */
function otlpPortProblems (env: Env, signals: ReadonlyArray<'TRACES' | 'METRICS'>): string[] {
  // One line per variable and protocol: the general endpoint may carry both signals.
  const found = new Map<string, { name: string, port: string, protocol: OtlpProtocol, own: boolean, what: string[] }>()
  for (const sig of signals) {
    const name = endpointVariable(env, sig)
    const port = httpUrl(env[name])?.port
    const { protocol } = otlpProtocol(env, sig)
    if (port !== (protocol === 'grpc' ? '4318' : '4317')) continue
    const at = found.get(`${name} ${protocol}`) ?? { name, port, protocol, own: name !== 'OTEL_EXPORTER_OTLP_ENDPOINT', what: [] }
    at.what.push(sig === 'TRACES' ? 'spans' : 'metrics')
    found.set(`${name} ${protocol}`, at)
  }
  return [...found.values()].map(({ name, port, protocol, own, what }) => {
    const grpc = protocol === 'grpc'
    const protocolVar = own ? name.replace('_ENDPOINT', '_PROTOCOL') : 'OTEL_EXPORTER_OTLP_PROTOCOL'
    return `${name} is on port ${port}, a collector's ${grpc ? 'OTLP/HTTP' : 'OTLP/gRPC'} port, but ${what.join(' and ')} are sent as ${protocol}: if a collector's default receivers listen there, every export fails with a protocol error (its ${grpc ? 'gRPC port is 4317' : 'HTTP port is 4318'}; or set ${protocolVar})`
  })
}

/**
 * Where a signal's OTLP exporter sends, worked out as the exporter does it (a signal's own endpoint as it
 * is; else the general one with the signal's path added over HTTP; else the default), for the start-up line
 * that says where telemetry goes. Origin and path only: credentials in a URL are not repeated.
 */
export function otlpDestination (env: Env, signal: 'TRACES' | 'METRICS'): string {
  const { protocol } = otlpProtocol(env, signal)
  const name = endpointVariable(env, signal)
  const set = env[name]?.trim() ?? ''
  const raw = name !== 'OTEL_EXPORTER_OTLP_ENDPOINT'
    ? set
    : set !== ''
      ? (protocol === 'grpc' ? set : `${set}${set.endsWith('/') ? '' : '/'}${SIGNAL_PATH[signal].slice(1)}`)
      : (protocol === 'grpc' ? 'http://localhost:4317' : `http://localhost:4318${SIGNAL_PATH[signal]}`)
  const url = httpUrl(raw)
  const where = url === undefined ? 'nowhere: not an http(s) URL' : url.origin + (protocol === 'grpc' && url.pathname === '/' ? '' : url.pathname)
  return `${where} (${protocol})`
}

/** Every OTEL_* value this process had to ignore or cannot use, one sentence each. Pure. */
export function otelEnvProblems (env: Env): string[] {
  const off = sdkDisabled(env)
  // Nothing is sampled or exported: none of the other settings is used, so none is worth a warning.
  if (off.disabled) return []
  const problems = samplerEnvProblems(env)
  const exporters = traceExporterNames(env)
  const unknown = exporters.filter(e => !EXPORTERS.includes(e))
  if (unknown.length > 0) {
    const left = exporters.filter(e => EXPORTERS.includes(e) && e !== 'none')
    problems.push(`OTEL_TRACES_EXPORTER: ${unknown.map(u => `"${u}"`).join(', ')} not supported here (${EXPORTERS.join(', ')}); ${left.length > 0 ? `exporting with ${left.join(', ')} only` : 'tracing is off'}`)
  }
  const metricExporters = metricExporterNames(env)
  const unknownMetrics = metricExporters.filter(e => !METRIC_EXPORTERS.includes(e))
  if (unknownMetrics.length > 0) {
    problems.push(`OTEL_METRICS_EXPORTER: ${unknownMetrics.map(u => `"${u}"`).join(', ')} not supported here (${METRIC_EXPORTERS.join(', ')}); /metrics is served for scraping either way`)
  }
  const pushing = metricExporters.includes('otlp') && !metricExporters.includes('none')
  // Only the variable that decides: the signal-specific one, when set, makes the general one irrelevant.
  for (const signal of pushing ? ['TRACES', 'METRICS'] as const : ['TRACES'] as const) {
    if (otlpProtocol(env, signal).unknown === undefined) continue
    const name = env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL'
    const problem = `${name}="${env[name]}" is not an OTLP protocol (${PROTOCOLS.join(', ')}); using http/protobuf`
    if (!problems.includes(problem)) problems.push(problem)
  }
  const endpoints = ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT', ...(pushing ? ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT'] : [])]
  for (const name of endpoints) {
    const v = env[name]?.trim()
    if (v === undefined || v === '') continue
    if (httpUrl(v) === undefined) {
      problems.push(name === 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT'
        ? `${name}="${v}" is not an http(s) URL: metrics cannot be pushed (each interval's export fails; /metrics still serves them)`
        : `${name}="${v}" is not an http(s) URL: spans cannot be exported (they stay queued, then are counted as dropped)`)
    }
  }
  const exportingSpans = exporters.includes('otlp') && !exporters.includes('none')
  const signals = [...(exportingSpans ? ['TRACES'] as const : []), ...(pushing ? ['METRICS'] as const : [])]
  problems.push(...otlpPathProblems(env, signals), ...otlpPortProblems(env, signals))
  const headerVars = [
    ...(exportingSpans || pushing ? ['OTEL_EXPORTER_OTLP_HEADERS'] : []),
    ...(exportingSpans ? ['OTEL_EXPORTER_OTLP_TRACES_HEADERS'] : []),
    ...(pushing ? ['OTEL_EXPORTER_OTLP_METRICS_HEADERS'] : [])
  ]
  for (const name of headerVars) problems.push(...otlpHeaderProblems(name, env[name] ?? ''))
  const tracing = exporters.some(e => EXPORTERS.includes(e) && e !== 'none') && !exporters.includes('none')
  // "1", "yes", "on": telemetry stays on. When tracing, NodeSDK reads the variable too and says so through
  // diag (in the log already); a metrics push alone would go out without a word.
  if (off.unknown !== undefined && !tracing && pushing) problems.push(`OTEL_SDK_DISABLED="${off.unknown}" is not true or false: the metrics push stays on (only "true", in any case, turns it off)`)
  const resource = tracing || pushing ? resourceAttributesProblem(env.OTEL_RESOURCE_ATTRIBUTES ?? '') : undefined
  if (resource !== undefined) problems.push(resource)
  // Several processes pushing cumulative series under one identity overwrite each other in the backend.
  const multiProcess = (env.ACCEPT_STRATEGY ?? 'single').trim() !== 'single'
  if (pushing && multiProcess && resourceAttributeFromEnv(env, 'service.instance.id') !== undefined) {
    problems.push(`OTEL_RESOURCE_ATTRIBUTES sets service.instance.id, so every worker of ACCEPT_STRATEGY=${env.ACCEPT_STRATEGY} pushes its metrics under the same one and a backend cannot tell their counts apart; leave it out (each worker then has its own)`)
  }
  if (pushing && metricsTemporality(env).unknown !== undefined) {
    problems.push(`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="${env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE}" is not cumulative, delta or lowmemory; pushing cumulative`)
  }
  // The pushed histograms are the registry's, buckets and all; the SDK's aggregation never sees them.
  const aggregation = env.OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION?.trim().toLowerCase()
  if (pushing && aggregation !== undefined && aggregation !== '' && aggregation !== 'explicit_bucket_histogram') {
    problems.push(`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION="${env.OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION}" is not applied: the pushed histograms are the registry's own, with the explicit buckets /metrics shows`)
  }
  for (const name of pushing ? ['OTEL_METRIC_EXPORT_INTERVAL', 'OTEL_METRIC_EXPORT_TIMEOUT'] : []) {
    const v = env[name]
    if (v !== undefined && v.trim() !== '' && !isPositiveInt(v)) problems.push(`${name}="${v}" is not a positive integer; using the default (docs/configuration.md)`)
  }
  for (const name of BSP) {
    const v = env[name]
    if (v !== undefined && v.trim() !== '' && !isPositiveInt(v)) problems.push(`${name}="${v}" is not a positive integer; using the default (docs/configuration.md)`)
  }
  return problems
}

/**
 * Installs a `diag` logger writing to `log` (as `component: "opentelemetry"`) at OTEL_LOG_LEVEL, default
 * warn; an OTEL_LOG_LEVEL that is set wins over LOG_LEVEL for these lines, as someone asking the SDK for
 * debug output expects to see it. A warning or error is written at most once a minute per kind, since some
 * repeat per export or per span: the kind is the message with its numbers and ids masked, so "Cannot execute
 * the operation on ended Span {traceId: …}" from a handler bug is one line a minute, not one per request.
 */
export function routeDiagnostics (log: Logger, env: Env): void {
  const set = diagLogLevelFromString(env.OTEL_LOG_LEVEL)
  const level = set ?? DiagLogLevel.WARN
  const out = log.child({ component: 'opentelemetry' }, set === undefined ? {} : { level: PINO_LEVEL[set] ?? 'warn' })
  const last = new Map<string, number>()
  const write = (pinoLevel: 'error' | 'warn' | 'info' | 'debug' | 'trace') => (message: string, ...args: unknown[]): void => {
    if (pinoLevel === 'error' || pinoLevel === 'warn') {
      const kind = message.replace(KIND_MASK, '#')
      const t = performance.now()
      if (t - (last.get(kind) ?? -Infinity) < 60_000) return
      if (last.size >= 100) last.clear() // bounded, whatever the messages
      last.set(kind, t)
    }
    out[pinoLevel]({ args: args.length > 0 ? args.map(a => a instanceof Error ? a.message : a) : undefined }, `OpenTelemetry: ${message}`)
  }
  const logger: DiagLogger = { error: write('error'), warn: write('warn'), info: write('info'), debug: write('debug'), verbose: write('trace') }
  diag.setLogger(logger, { logLevel: level, suppressOverrideMessage: true })
}

// Trace and span ids (hex) and numbers: what varies between repeats of one kind of message.
const KIND_MASK = /[0-9a-f]{16,}|\d+/gi

const PINO_LEVEL: Partial<Record<DiagLogLevel, string>> = {
  [DiagLogLevel.NONE]: 'silent',
  [DiagLogLevel.ERROR]: 'error',
  [DiagLogLevel.WARN]: 'warn',
  [DiagLogLevel.INFO]: 'info',
  [DiagLogLevel.DEBUG]: 'debug',
  [DiagLogLevel.VERBOSE]: 'trace',
  [DiagLogLevel.ALL]: 'trace'
}
