// The admin listener's Fastify instance (/metrics, /healthz, /readyz, /journey), for a single process and a
// cluster's primary alike.
import compress from '@fastify/compress'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { trackConnections } from './connections.ts'

export async function createAdmin (log: Logger): Promise<FastifyInstance> {
  const admin = Fastify({ loggerInstance: log.child({ listener: 'admin' }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) })
  // Prometheus asks every scrape for gzip (Accept-Encoding), and prom-client never compresses: the demo's
  // exposition is ≈ 390 KB after a minute of mixed load and ≈ 20 KB gzipped. zlib runs in its thread pool,
  // off the serving thread. Only gzip, which every scraper and browser takes; never the page's event stream
  // (@fastify/compress leaves text/event-stream alone).
  await admin.register(compress, { global: true, encodings: ['gzip'], threshold: 1024 })
  // A connection that has sent nothing (a scraper's or a probe's, opened as shutdown began) kept close()
  // waiting for ever: this listener has no shutdown deadline. Fastify closes the idle ones itself.
  const connections = trackConnections(admin.server, 'connection')
  admin.addHook('preClose', (done) => { connections.closeSilent(); done() })
  return admin
}
