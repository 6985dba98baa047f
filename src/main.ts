// Entry point: config → telemetry → server → signals.
import pino from 'pino'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { startTelemetry } from './telemetry.ts'
import { startServer } from './server.ts'

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

const log = pino({ level: config.logLevel, base: { service: config.serviceName } })
const telemetry = startTelemetry(config.serviceName, log)
const server = await startServer(config, telemetry, log).catch(configError)

const TELEMETRY_FLUSH_MS = 3000
let stopping = false
async function stop (signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    log.warn({ signal }, 'second signal: exiting now')
    process.exit(1)
  }
  stopping = true
  log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down: no new connections, finishing in-flight requests')
  await server.close()
  // Bounded: an unreachable collector (the exporter retries with backoff) must not hold the exit.
  await telemetry.shutdown(TELEMETRY_FLUSH_MS)
  log.info('stopped')
  process.exit(0)
}
process.on('SIGTERM', (s) => { void stop(s) })
process.on('SIGINT', (s) => { void stop(s) })
