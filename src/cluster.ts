// The accept strategies that need more than one process (ACCEPT_STRATEGY, WORKERS):
//   cluster-rr      the primary accepts every connection and hands it to a worker (one acceptor)
//   cluster-shared  workers accept on one shared listening socket (contending acceptors)
//   reuseport       each worker binds its own socket with SO_REUSEPORT: its own accept queue, the kernel spreads
//                   connections by hash
// The primary serves no requests: it forks the workers, replaces one that dies, serves the admin listener
// with every worker's metrics merged into one scrape (each series labelled with its `worker`), and drains
// the workers on SIGTERM/SIGINT.
import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import { createAdmin } from './admin.ts'
import { AggregatorRegistry, type Registry } from 'prom-client'
import type { Config } from './config.ts'
import { listenError } from './server.ts'
import { announceGenerated, loadTlsMaterial, shareTls, sharedTlsMaterial, type SharedTls, type TlsMaterial } from './tls-cert.ts'

/** Sent by a worker once its HTTP and HTTPS listeners accept. */
export interface ListeningMessage { type: 'journey:listening', worker: number, http: number, https: number }

/** A worker asks its primary for the TLS material (TlsMessage answers) before it starts its servers. */
interface TlsRequest { type: 'journey:tls?' }
interface TlsMessage { type: 'journey:tls', tls: SharedTls }

export async function runPrimary (config: Config, log: Logger): Promise<void> {
  // Must be chosen before the first fork. reuseport workers bind their own sockets, so the policy is moot there.
  cluster.schedulingPolicy = config.acceptStrategy === 'cluster-rr' ? cluster.SCHED_RR : cluster.SCHED_NONE
  // Loaded (or generated) once for every worker, with one set of session ticket keys: the workers serve as one
  // TLS server. Each worker generated its own development certificate before (a client saw a different one
  // depending on the worker it reached), and with reuseport a client resumed its TLS session only when the
  // kernel sent it back to the worker that issued its ticket (Node shares ticket keys only between workers
  // that listen through the primary). Sent over IPC rather than in the workers' environment, where any
  // process of the same user could read the ticket keys.
  const material = await loadTlsMaterial(config.tlsCert, config.tlsKey)
  announceGenerated(log, material)
  const tls = shareTls(material)
  const metrics = new AggregatorRegistry()
  const listening = new Map<number, ListeningMessage>()
  const byId = new Map<number, Worker>()
  let stopping = false
  let announced = false

  function fork (id: number): void {
    const attrs = [process.env.OTEL_RESOURCE_ATTRIBUTES, `journey.worker=${id}`].filter(Boolean).join(',')
    const worker = cluster.fork({ JOURNEY_WORKER_ID: String(id), OTEL_RESOURCE_ATTRIBUTES: attrs })
    byId.set(id, worker)
    worker.on('message', (m: ListeningMessage | TlsRequest) => {
      if (m?.type === 'journey:tls?') worker.send({ type: 'journey:tls', tls } satisfies TlsMessage)
      if (m?.type !== 'journey:listening') return
      listening.set(id, m)
      if (!announced && listening.size === config.workers) void announce()
    })
    worker.on('exit', (code, signal) => {
      const wasListening = listening.delete(id)
      byId.delete(id)
      if (stopping) return
      if (code === 2 && !wasListening) {
        // A configuration error (bad port, unreadable certificate) repeats in every replacement: stop instead.
        log.fatal({ worker: id }, 'a worker could not start (configuration error above); stopping')
        stopping = true
        for (const w of byId.values()) w.process.kill('SIGTERM')
        process.exitCode = 2
        void admin.close()
        return
      }
      log.error({ worker: id, code, signal }, 'worker died; starting a replacement')
      fork(id)
    })
  }

  const admin = await createAdmin(log)
  admin.get('/metrics', { config: { purpose: 'Prometheus metrics of every worker, merged (text format)' } }, async (_request, reply) => {
    // Merged by prom-client over IPC: counters and histograms of the same labels are summed, and every
    // worker's series carry its `worker` label, so per-worker and total views both work. The merge uses
    // the classic text format: exemplars do not survive it.
    reply.type(metrics.contentType)
    return metrics.clusterMetrics()
  })
  admin.get('/healthz', async () => ({ status: 'ok' }))
  admin.get('/readyz', async (_request, reply) => {
    if (stopping || listening.size < config.workers) return reply.code(503).send({ status: stopping ? 'draining' : 'starting', workers: listening.size })
    return { status: 'ready', workers: listening.size }
  })
  admin.get('/journey', { config: { purpose: 'none here: the journey page shows one process (this is a cluster\'s primary)' } }, async (_request, reply) => reply.code(404).type('text/plain').send(
    `The journey page shows one process's requests; with ACCEPT_STRATEGY=${config.acceptStrategy} requests are served by ${config.workers} workers. Use Grafana or Jaeger, or run with ACCEPT_STRATEGY=single.\n`))
  await admin.listen({ port: config.metricsPort, host: config.metricsHost }).catch((err: NodeJS.ErrnoException) => {
    throw listenError(err, 'METRICS_PORT', config.metricsPort, config.metricsHost)
  })
  const metricsPort = (admin.server.address() as { port: number }).port

  async function announce (): Promise<void> {
    announced = true
    const first = [...listening.values()][0]!
    log.info({ http: first.http, https: first.https, metrics: metricsPort, host: config.host, metricsHost: config.metricsHost, strategy: config.acceptStrategy, workers: config.workers }, 'listening')
  }

  for (let id = 1; id <= config.workers; id++) fork(id)

  async function stop (signal: NodeJS.Signals): Promise<void> {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      for (const w of byId.values()) w.process.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    log.info({ signal, workers: byId.size }, 'shutting down: draining workers')
    const exits = [...byId.values()].map(w => new Promise<void>(resolve => {
      if (w.isDead()) resolve()
      else { w.once('exit', () => resolve()); w.process.kill('SIGTERM') }
    }))
    // Workers drain within SHUTDOWN_TIMEOUT_MS and flush spans within a few seconds; then they are killed.
    const deadline = setTimeout(() => { for (const w of byId.values()) w.process.kill('SIGKILL') }, config.shutdownTimeoutMs + 5000)
    await Promise.all(exits)
    clearTimeout(deadline)
    await admin.close()
    log.info('stopped')
    process.exit(0)
  }
  process.on('SIGTERM', (s) => { void stop(s) })
  process.on('SIGINT', (s) => { void stop(s) })
}

/** In a worker: answer the primary's metric requests from this registry, every series labelled with the worker. */
export function serveWorkerMetrics (registry: Registry<any>, worker: number): void {
  registry.setDefaultLabels({ worker: String(worker) })
  void new AggregatorRegistry() // installs the IPC listener that answers the primary
  AggregatorRegistry.setRegistries([registry])
}

/** In a worker: the TLS material its primary loaded for all workers (runPrimary). */
export function tlsFromPrimary (): Promise<TlsMaterial> {
  return new Promise(resolve => {
    const onMessage = (m: TlsMessage | undefined): void => {
      if (m?.type !== 'journey:tls') return
      process.off('message', onMessage)
      resolve(sharedTlsMaterial(m.tls))
    }
    process.on('message', onMessage)
    process.send!({ type: 'journey:tls?' } satisfies TlsRequest)
  })
}
