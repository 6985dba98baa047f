// Every environment variable the server reads, validated in one place.
// A bad value stops start-up with one line naming the variable and what is allowed,
// because a server that silently falls back to a default is a server nobody can reason about.

import { PRECISIONS, type Precision } from './journey/stages.ts'
import { resourceAttributeFromEnv } from './resource-env.ts'
const ACCEPT_STRATEGIES = ['single', 'cluster-rr', 'cluster-shared', 'reuseport'] as const
type AcceptStrategy = typeof ACCEPT_STRATEGIES[number]

const EXPORT_THREADS = ['auto', 'worker', 'main'] as const
export type ExportThreadChoice = typeof EXPORT_THREADS[number]

export interface Config {
  host: string
  httpPort: number
  httpsPort: number
  metricsHost: string
  metricsPort: number
  tlsCert: string | undefined
  tlsKey: string | undefined
  headersTimeoutMs: number
  requestTimeoutMs: number
  keepAliveTimeoutMs: number
  /** A connection on which no byte moves either way for this long is closed (Fastify's connectionTimeout); 0: never. */
  connectionTimeoutMs: number
  tlsHandshakeTimeoutMs: number
  /** The HTTPS listener offers HTTP/2 (ALPN h2), and HTTP/1.1 to clients without it. */
  httpsHttp2: boolean
  recordHeaders: string[]
  recordResponseHeaders: string[]
  maxHeaderSize: number
  bodyLimitBytes: number
  shutdownTimeoutMs: number
  logLevel: string
  computeMaxMs: number
  ioMaxMs: number
  downloadMaxKb: number
  workerThreads: number
  journeyEnabled: boolean
  precision: Precision
  slowThresholdMs: number
  keepErrors: boolean
  /** Requests each tail rule (slow, error) may keep a second (JourneyOptions.keepLimitPerSecond). */
  keepLimitPerSecond: number
  recordExceptions: boolean
  /** Send each response's stages in a Server-Timing header (JourneyOptions.serverTiming). */
  serverTiming: boolean
  kernelSampleMs: number
  /** Where OTLP/HTTP exports are sent from (telemetry.ts: exportThread). */
  exportThread: ExportThreadChoice
  /** Span batches that may be in flight to the collector at once (journey/span-pipeline.ts). */
  exportConcurrency: number
  acceptStrategy: AcceptStrategy
  /** Worker processes for the cluster and reuseport strategies. */
  workers: number
  /** listen(2) backlog: the accept queue's length (the kernel caps it at net.core.somaxconn). */
  listenBacklog: number
  /** Open connections per listener (and process) beyond which Node closes new ones unserved; undefined: no limit. */
  maxConnections: number | undefined
  serviceName: string
  jaegerUiUrl: string | undefined
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Env = Record<string, string | undefined>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

function present (env: Env, name: string): string | undefined {
  const v = env[name]
  return v === undefined || v.trim() === '' ? undefined : v.trim()
}

function int (env: Env, name: string, def: number, min: number, max: number): number {
  const raw = present(env, name)
  if (raw === undefined) return def
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: expected an integer from ${min} to ${max}`)
  const n = Number(raw)
  if (n < min || n > max) throw new ConfigError(`${name}=${raw} is out of range: expected an integer from ${min} to ${max}`)
  return n
}

function port (env: Env, name: string, def: number): number {
  // 0 asks the kernel for an ephemeral port (tests use it).
  return int(env, name, def, 0, 65535)
}

function oneOf<T extends string> (env: Env, name: string, def: T, allowed: readonly T[]): T {
  const raw = present(env, name)
  if (raw === undefined) return def
  const v = raw.toLowerCase() as T
  if (!allowed.includes(v)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: expected one of ${allowed.join(', ')}`)
  return v
}

/** JOURNEY_EXPORT_THREAD, as the server reads it (also read by the bench's servers, so bench:ab can compare the two). */
export function exportThreadFromEnv (env: Env): ExportThreadChoice {
  return oneOf(env, 'JOURNEY_EXPORT_THREAD', 'auto', EXPORT_THREADS)
}

function bool (env: Env, name: string, def: boolean): boolean {
  const v = oneOf(env, name, def ? 'true' : 'false', ['true', 'false', '1', '0'])
  return v === 'true' || v === '1'
}

/** Header names to record on request spans: an explicit allowlist, because headers carry secrets. */
function headerList (env: Env, name: string): string[] {
  const raw = present(env, name)
  if (raw === undefined) return []
  const names = raw.split(',').map(h => h.trim().toLowerCase()).filter(Boolean)
  for (const h of names) {
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(h)) throw new ConfigError(`${name} contains ${JSON.stringify(h)}, which is not a header name`)
    if (h === 'authorization' || h === 'cookie' || h === 'proxy-authorization' || h === 'set-cookie') {
      throw new ConfigError(`${name} may not record ${h}: it carries credentials`)
    }
  }
  return names
}

function url (env: Env, name: string): string | undefined {
  const raw = present(env, name)
  if (raw === undefined) return undefined
  if (!/^https?:\/\/[^\s]+$/.test(raw)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: expected an http(s) URL`)
  return raw.replace(/\/+$/, '')
}

export function loadConfig (env: Env = process.env): Config {
  const tlsCert = present(env, 'TLS_CERT')
  const tlsKey = present(env, 'TLS_KEY')
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError('TLS_CERT and TLS_KEY must be set together (paths to a PEM certificate and its key), or neither for a generated development certificate')
  }
  const config: Config = {
    host: present(env, 'HOST') ?? '0.0.0.0',
    httpPort: port(env, 'HTTP_PORT', 3000),
    httpsPort: port(env, 'HTTPS_PORT', 3443),
    metricsHost: present(env, 'METRICS_HOST') ?? '127.0.0.1',
    metricsPort: port(env, 'METRICS_PORT', 9464),
    tlsCert,
    tlsKey,
    headersTimeoutMs: int(env, 'HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
    requestTimeoutMs: int(env, 'REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000),
    keepAliveTimeoutMs: int(env, 'KEEP_ALIVE_TIMEOUT_MS', 5_000, 100, 600_000),
    connectionTimeoutMs: int(env, 'CONNECTION_TIMEOUT_MS', NaN, 0, 3_600_000),
    tlsHandshakeTimeoutMs: int(env, 'TLS_HANDSHAKE_TIMEOUT_MS', 10_000, 100, 600_000),
    httpsHttp2: bool(env, 'HTTPS_HTTP2', false),
    recordHeaders: headerList(env, 'JOURNEY_RECORD_HEADERS'),
    recordResponseHeaders: headerList(env, 'JOURNEY_RECORD_RESPONSE_HEADERS'),
    maxHeaderSize: int(env, 'MAX_HEADER_SIZE', 16_384, 1024, 1_048_576),
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 1_048_576, 1, 1_073_741_824),
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', LOG_LEVELS),
    computeMaxMs: int(env, 'COMPUTE_MAX_MS', 2_000, 0, 60_000),
    ioMaxMs: int(env, 'IO_MAX_MS', 10_000, 0, 600_000),
    downloadMaxKb: int(env, 'DOWNLOAD_MAX_KB', 102_400, 0, 10_485_760),
    workerThreads: int(env, 'WORKER_THREADS', 2, 1, 64),
    journeyEnabled: bool(env, 'JOURNEY_ENABLED', true),
    precision: oneOf(env, 'JOURNEY_PRECISION', 'default', PRECISIONS),
    slowThresholdMs: int(env, 'JOURNEY_SLOW_MS', 500, 0, 3_600_000),
    keepErrors: bool(env, 'JOURNEY_KEEP_ERRORS', true),
    keepLimitPerSecond: int(env, 'JOURNEY_KEEP_PER_SECOND', 100, 0, 1_000_000),
    recordExceptions: bool(env, 'JOURNEY_RECORD_EXCEPTIONS', true),
    serverTiming: bool(env, 'JOURNEY_SERVER_TIMING', false),
    kernelSampleMs: int(env, 'JOURNEY_KERNEL_SAMPLE_MS', 0, 0, 60_000),
    exportThread: exportThreadFromEnv(env),
    // The default is telemetry.ts's SPAN_QUEUE_DEFAULTS.maxConcurrentExports; at most the OTLP exporters' own
    // limit of concurrent sends (30), beyond which they refuse an export.
    exportConcurrency: int(env, 'JOURNEY_EXPORT_CONCURRENCY', 8, 1, 30),
    acceptStrategy: oneOf(env, 'ACCEPT_STRATEGY', 'single', ACCEPT_STRATEGIES),
    workers: int(env, 'WORKERS', 2, 1, 64),
    listenBacklog: int(env, 'LISTEN_BACKLOG', 511, 1, 65_535),
    maxConnections: present(env, 'MAX_CONNECTIONS') === undefined ? undefined : int(env, 'MAX_CONNECTIONS', 0, 1, 1_000_000),
    // As the specification orders them: OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES.
    serviceName: present(env, 'OTEL_SERVICE_NAME') ?? resourceAttributeFromEnv(env, 'service.name') ?? 'request-journey',
    jaegerUiUrl: url(env, 'JAEGER_UI_URL')
  }
  // Node rejects a headers timeout longer than the request timeout; say so here, by name.
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(`HEADERS_TIMEOUT_MS=${config.headersTimeoutMs} must not exceed REQUEST_TIMEOUT_MS=${config.requestTimeoutMs}`)
  }
  // A demo request may leave its connection silent for up to IO_MAX_MS or COMPUTE_MAX_MS (the handler
  // waiting, or the event loop busy): a shorter idle limit would cut those off, not stalled clients.
  const longest = Math.max(config.ioMaxMs, config.computeMaxMs)
  // Unset: a minute, or longer when those limits were raised (only a value someone chose is refused).
  if (Number.isNaN(config.connectionTimeoutMs)) config.connectionTimeoutMs = Math.max(60_000, longest + 10_000)
  else if (config.connectionTimeoutMs !== 0 && config.connectionTimeoutMs <= longest) {
    throw new ConfigError(`CONNECTION_TIMEOUT_MS=${config.connectionTimeoutMs} must exceed IO_MAX_MS and COMPUTE_MAX_MS (${longest}), or their longest requests are cut off (0 turns it off)`)
  }
  // Each reuseport worker binds its own socket: port 0 would give each worker a different port.
  if (config.acceptStrategy === 'reuseport' && (config.httpPort === 0 || config.httpsPort === 0)) {
    throw new ConfigError('ACCEPT_STRATEGY=reuseport needs fixed HTTP_PORT and HTTPS_PORT (0 would give every worker its own port)')
  }
  const ports = [config.httpPort, config.httpsPort, config.metricsPort].filter(p => p !== 0)
  if (new Set(ports).size !== ports.length) {
    throw new ConfigError(`HTTP_PORT, HTTPS_PORT and METRICS_PORT must differ (got ${config.httpPort}, ${config.httpsPort}, ${config.metricsPort})`)
  }
  return config
}
