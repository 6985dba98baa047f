// The admin listener's Fastify instance (/metrics, /healthz, /readyz, /journey), for a single process and a
// cluster's primary alike.
import compress from '@fastify/compress'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
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

/**
 * How long a close waits for a response still being written. Under Fastify's pluginTimeout (10 s), which
 * bounds a close hook too: a hook that outlasts it fails the close with AVV_ERR_READY_TIMEOUT, uncaught.
 */
const FLUSH_MS = 5000

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
  const writing = endedResponses(admin.server)
  admin.addHook('preClose', async () => {
    await writing.written(FLUSH_MS)
    connections.closeSilent()
  })
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

/**
 * The responses of `server` that have ended but are not yet handed to the kernel. Node's close() takes their
 * connections for idle and destroys them with the rest unsent (connections.ts, stopAccepting): a 16 MB
 * response to a reader that had paused arrived 3.9 MB (test/admin.test.ts) — a scrape of a service with
 * hundreds of routes runs to 13 MB, to a scraper that does not ask for gzip. So the close first waits for
 * them, for at most `maxMs`. Not the public listeners' way (server.ts's closeServer asks the sockets): this
 * takes a listener per request, which a listener serving scrapes and a page can afford; and a live page's
 * stream, never ended, is not waited for (the page's own preClose ends it).
 */
function endedResponses (server: Server): { written: (maxMs: number) => Promise<void> } {
  const open = new Set<ServerResponse>()
  server.on('request', (_request: IncomingMessage, response: ServerResponse) => {
    open.add(response)
    response.once('close', () => open.delete(response))
  })
  const writing = (): boolean => [...open].some(r => r.writableEnded && !r.writableFinished)
  return {
    async written (maxMs) {
      const until = performance.now() + maxMs
      while (writing() && performance.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
}

function escapeHtml (s: string): string {
  return s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}
