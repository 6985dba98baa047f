// Entry point: config → telemetry → server → signals. With a multi-process ACCEPT_STRATEGY this file runs
// as the cluster's primary (forks workers, serves admin) and again in each worker (serves requests).
import cluster from 'node:cluster'
import pino from 'pino'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { startTelemetry } from './telemetry.ts'
import { startServer, type ServerRole } from './server.ts'
import { runPrimary, serveWorkerMetrics, tlsFromPrimary, type ListeningMessage } from './cluster.ts'
import { keepTickShape } from './tick-shape.ts'

// First: V8 can otherwise leave process.nextTick ≈ 2 µs slower for good at a random moment (tick-shape.ts).
keepTickShape()

function configError (err: unknown): never {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`request-journey: configuration error: ${err.message}\n`)
  process.exit(2)
}

let config: Config
try {
  config = loadConfig()
} catch (err) {
  configError(err)
}

const TELEMETRY_FLUSH_MS = 3000

async function serve (workerId: number | undefined): Promise<void> {
  const role: ServerRole = workerId === undefined ? { kind: 'single' } : { kind: 'worker', id: workerId, tls: await tlsFromPrimary() }
  const log = pino({ level: config.logLevel, base: { service: config.serviceName, ...(workerId === undefined ? {} : { worker: workerId }) } })
  const telemetry = await startTelemetry(config.serviceName, log, { exportThread: config.exportThread, exportConcurrency: config.exportConcurrency })
  if (workerId !== undefined) serveWorkerMetrics(telemetry.registry, workerId)
  const server = await startServer(config, telemetry, log, role).catch(async (err: unknown) => {
    // startServer has let go of what it began; the export worker thread (if any) goes too before exiting.
    await telemetry.shutdown(TELEMETRY_FLUSH_MS)
    return configError(err)
  })
  // Where telemetry goes, and which traces are kept besides the head sampler's (the journey's tail rules).
  const tailKeep = `requests of ${config.slowThresholdMs} ms or more${config.keepErrors ? ', and 5xx and cut-off ones' : ''}, whatever the head sampler said (at most ${config.keepLimitPerSecond} a second by each rule)`
  const { metricsPush, ...spans } = telemetry.destinations
  log.info({ ...spans, ...(telemetry.tracing === undefined ? {} : { tailKeep }), metricsPush }, 'telemetry')
  if (workerId !== undefined) process.send!({ type: 'journey:listening', worker: workerId, ...server.ports } satisfies ListeningMessage)

  let stopping = false
  async function stop (signal: NodeJS.Signals): Promise<void> {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down: no new connections, finishing in-flight requests')
    // The last metrics push reads the registry while the journey's series are still in it, with every
    // request's counts; its delivery is waited for below, alongside the spans', within one deadline.
    await server.close(async () => { await telemetry.lastMetricsPush(TELEMETRY_FLUSH_MS) })
    // Bounded: an unreachable collector (the exporter retries with backoff) must not hold the exit.
    await telemetry.shutdown(TELEMETRY_FLUSH_MS)
    log.info('stopped')
    process.exit(0)
  }
  process.on('SIGTERM', (s) => { void stop(s) })
  // A worker leaves Ctrl-C to the primary, which drains workers with SIGTERM (a second signal would force them).
  process.on('SIGINT', (s) => { if (workerId === undefined) void stop(s) })
}

if (config.acceptStrategy === 'single') {
  await serve(undefined)
} else if (cluster.isPrimary) {
  await runPrimary(config, pino({ level: config.logLevel, base: { service: config.serviceName, role: 'primary' } })).catch(configError)
} else {
  await serve(Number(process.env.JOURNEY_WORKER_ID))
}
