// Run as a process by test/main.test.ts: starts the server the way main.ts does, but when start-up fails it
// only says so and shuts telemetry down, without process.exit(). The process then ends by itself only if
// the failed start-up released everything it had begun; if it is still alive later, it names what holds it.
import pino from 'pino'
import { loadConfig } from '../../src/config.ts'
import { startTelemetry } from '../../src/telemetry.ts'
import { startServer } from '../../src/server.ts'

const config = loadConfig()
const log = pino({ level: 'silent' })
const telemetry = await startTelemetry(config.serviceName, log)
try {
  await startServer(config, telemetry, log)
  console.log('started')
} catch (err) {
  console.log(`start-up failed: ${(err as Error).message}`)
  // A worker thread holds a MessagePort, a listener a TCPServerWrap (this process's stdout and stderr are pipes).
  console.log(`held right after: ${process.getActiveResourcesInfo().join(', ')}`)
}
await telemetry.shutdown(1000)
setTimeout(() => { console.log(`still held by: ${process.getActiveResourcesInfo().join(', ')}`) }, 3000).unref()
