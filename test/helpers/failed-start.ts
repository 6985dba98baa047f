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
  // A closed listener's handle is let go in the event loop's close phase, after close() has returned and its
  // callback has run: read at once, a listener closed a moment before was still named (once in CI, 2026-12-05:
  // "TCPServerWrap, TCPServerWrap", the bound one and the one whose bind failed; in a bare script both were
  // still named in close()'s callback and one setImmediate later, gone after two). Two turns of the loop
  // later only what was never let go is held — a listener left open, a worker never ended — as it is for good.
  for (let turn = 0; turn < 2; turn++) await new Promise(resolve => setImmediate(resolve))
  // A worker thread holds a MessagePort, a listener a TCPServerWrap (this process's stdout and stderr are pipes).
  console.log(`held right after: ${process.getActiveResourcesInfo().join(', ')}`)
}
await telemetry.shutdown(1000)
setTimeout(() => { console.log(`still held by: ${process.getActiveResourcesInfo().join(', ')}`) }, 3000).unref()
