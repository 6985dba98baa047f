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
