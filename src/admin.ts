// The admin listener's Fastify instance (/metrics, /healthz, /readyz, /journey), for a single process and a
// cluster's primary alike.
import compress from '@fastify/compress'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { trackConnections } from './connections.ts'

/**
 * What each admin path is for, as its index says it. A route's own `config.purpose` wins (the cluster's
 * primary answers /journey only to say why it has none); a path named nowhere is listed bare.
 */
const PURPOSE: Readonly<Record<string, string>> = {
  '/journey': 'the journey page: recent requests, each stage drawn to scale',
  '/journey/snapshot.json': 'the journey page\'s data as JSON: recent and slowest requests, per-stage percentiles, connections',
  '/journey/events': 'the journey page\'s live feed (Server-Sent Events)',
  '/metrics': 'Prometheus metrics (OpenMetrics when asked)',
  '/healthz': 'liveness: 200 while the process serves',
  '/readyz': 'readiness: 503 while starting or draining'
}

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
  listPaths(admin)
  return admin
}

/**
 * The root says what this port serves, instead of a 404: the log names the port, and someone who opens it in
 * a browser should find the journey page from there. Built from the routes as they are added, so it lists
 * what this process has (a cluster's primary has no journey page; JOURNEY_ENABLED=false drops it).
 */
function listPaths (admin: FastifyInstance): void {
  const lines: Array<{ path: string, purpose: string }> = []
  admin.addHook('onRoute', (route) => {
    if (route.method !== 'GET' || route.url === '/') return
    const own = (route.config as { purpose?: string } | undefined)?.purpose
    lines.push({ path: route.url, purpose: own ?? PURPOSE[route.url] ?? '' })
  })
  admin.get('/', async (request, reply) => {
    if (request.headers.accept?.includes('text/html') === true) {
      const items = lines.map(l => `<li><a href="${escapeHtml(l.path)}">${escapeHtml(l.path)}</a>${l.purpose === '' ? '' : ` — ${escapeHtml(l.purpose)}`}</li>`)
      return reply.type('text/html; charset=utf-8').send(
        `<!doctype html><meta charset="utf-8"><title>request-journey admin</title><h1>request-journey admin</h1><ul>${items.join('')}</ul>\n`)
    }
    return reply.type('text/plain; charset=utf-8').send(
      `request-journey admin\n${lines.map(l => `${l.path.padEnd(24)}${l.purpose}`.trimEnd()).join('\n')}\n`)
  })
}

function escapeHtml (s: string): string {
  return s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}
