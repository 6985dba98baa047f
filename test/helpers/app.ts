// Pieces shared by the tests that use the journey as another Fastify app would (test/journey/*).
import { trace } from '@opentelemetry/api'
import type { FastifyInstance } from 'fastify'

/** A handler that starts a span of its own after an await, as one querying a database would. */
export async function dbQuery (): Promise<{ ok: boolean }> {
  await new Promise(resolve => setImmediate(resolve))
  return trace.getTracer('app').startActiveSpan('db.query', (span) => { span.end(); return { ok: true } })
}

/** Listens on an ephemeral loopback port; returns the base URL. */
export async function listenLocal (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

/**
 * A journey app in a service that runs @opentelemetry/instrumentation-http: the SDK (with the journey's
 * tracing and the http instrumentation) starts before Fastify and the journey are loaded, since the
 * instrumentation patches `http` when it is first loaded. `routes` adds the app's routes after the plugin.
 */
export async function journeyUnderHttpInstrumentation (
  tracingOptions: import('../../src/journey/index.ts').JourneyTracingOptions,
  routes: (app: FastifyInstance) => void
): Promise<{ sdk: import('@opentelemetry/sdk-node').NodeSDK, app: FastifyInstance, base: string }> {
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http')
  const { createJourney, journeyTracing } = await import('../../src/journey/index.ts')
  const tracing = journeyTracing(tracingOptions)
  const sdk = new NodeSDK({ ...tracing.sdkOptions, metricReaders: [], logRecordProcessors: [], instrumentations: [new HttpInstrumentation()] })
  sdk.start()
  const { default: Fastify } = await import('fastify')
  const { Registry } = await import('prom-client')
  const journey = createJourney({ registry: new Registry(), tracing })
  const app = Fastify({ serverFactory: journey.serverFactory({ keepAliveTimeout: 5000 }) })
  await app.register(journey.plugin)
  routes(app)
  return { sdk, app, base: await listenLocal(app) }
}

/**
 * An export queue for the queue-full tests: a span processor given these methods offers admission and
 * reservations (SpanAdmission) as src/journey/span-pipeline.ts does, over `room` spans the test sets directly.
 */
export function fakeQueue (room: number): { queue: { room: number, held: number }, admission: Required<import('../../src/journey/index.ts').SpanAdmission> } {
  const queue = { room, held: 0 }
  return {
    queue,
    admission: {
      admit: (spans) => spans <= queue.room,
      reserve: (spans) => {
        if (spans > queue.room) return false
        queue.room -= spans
        queue.held += spans
        return true
      },
      release: (spans) => { queue.room += spans; queue.held -= spans }
    }
  }
}
