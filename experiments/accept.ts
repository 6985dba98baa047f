// Experiment `accept`: a connection storm against each accept strategy.
//
// Hypothesis: with one request per new connection, accepting is the work. One process accepts on one
// core; cluster round-robin adds a hop (the primary accepts, then passes the socket to a worker over IPC),
// so its connect-to-response latency is the highest; a shared socket lets workers contend (uneven split);
// reuseport gives each worker its own queue and the kernel spreads connections by hash (even split).
// The accept-queue peak and the kernel wait before accept show where connections waited. With
// --maxConnections=N (MAX_CONNECTIONS) Node closes every connection past N open as soon as it accepts it:
// the server's dropped count should be exactly the clients' failures.
import { experiment } from './lib/experiment.ts'
import { quantile, timedRequest, type Phases } from './lib/phase-client.ts'
import { byLabel, delta, meanMs, series, sharedDelta, type Metrics } from './lib/metrics.ts'
import { configurable, startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'

const STRATEGIES = ['single', 'cluster-rr', 'cluster-shared', 'reuseport'] as const

export const accept = experiment({
  name: 'accept',
  hypothesis: 'Cluster round-robin pays an IPC hop per connection; a shared socket splits connections unevenly; reuseport splits them evenly with a queue per worker.',
  options: { connections: 3000, concurrency: 64, workers: 2, backlog: 511, maxConnections: 0 },
  chart: { title: 'Connection storm: client-side latency per accept strategy', unit: 'ms', series: [{ label: 'connect p50', key: 'connect p50 ms' }, { label: 'connect p99', key: 'connect p99 ms' }, { label: 'response p99', key: 'response p99 ms' }] },
  async run (opts, progress) {
    const rows = []
    const failures: string[] = []
    // Against a --url target the strategy is whatever it runs: one variant, named so.
    for (const strategy of configurable() ? STRATEGIES : ['target'] as const) {
      const env: Record<string, string> = { WORKERS: String(opts.workers), LISTEN_BACKLOG: String(opts.backlog), JOURNEY_KERNEL_SAMPLE_MS: '5' }
      if (strategy !== 'target') env.ACCEPT_STRATEGY = strategy
      if (opts.maxConnections > 0) env.MAX_CONNECTIONS = String(opts.maxConnections)
      const server = await startServer(env)
      try {
        // Warm-up, then the storm: `concurrency` loops each opening one connection per request.
        await storm(server, 200, 16, () => {})
        const before = strategy === 'target' ? await server.scrape() : await samplersReady(server, strategy === 'single' ? 1 : opts.workers)
        const peaks = new QueuePeaks()
        const sampling = setInterval(() => {
          void server.scrape().then(m => peaks.add(m), () => {})
        }, 250)
        const started = Date.now()
        const phases = await storm(server, opts.connections, opts.concurrency, (done) => progress(`${strategy}: ${done}/${opts.connections} connections`))
        const seconds = (Date.now() - started) / 1000
        clearInterval(sampling)
        await annotate(`accept: ${strategy}`, started, Date.now())
        const after = await server.scrape()
        peaks.add(after)
        const perWorker = byLabel(after, 'journey_connections_accepted_total', 'worker', { listener: 'http' })
        const beforeWorker = byLabel(before, 'journey_connections_accepted_total', 'worker', { listener: 'http' })
        // Busiest worker first, and the queue column in the same worker order.
        const workers = [...perWorker].map(([w, n]) => [w, n - (beforeWorker.get(w) ?? 0)] as const).sort((a, b) => b[1] - a[1])
        const split = workers.map(([, n]) => n)
        const ok = phases.filter(p => p.status === 200)
        if (ok.length < phases.length) failures.push(`${strategy}: ${summarizeFailures(phases.filter(p => p.status !== 200))}`)
        rows.push({
          variant: strategy,
          'conn/s': Math.round(phases.length / seconds),
          'connect p50 ms': quantile(ok.map(p => p.connected - p.start), 0.5),
          'connect p99 ms': quantile(ok.map(p => p.connected - p.start), 0.99),
          'response p99 ms': quantile(ok.map(p => p.end - p.start), 0.99),
          failed: phases.length - ok.length,
          'dropped (maxConnections)': delta(before, after, 'journey_connections_dropped_total', { listener: 'http' }),
          'accepted per worker': split.length === 0 ? String(delta(before, after, 'journey_connections_accepted_total', { listener: 'http' })) : split.join(' / '),
          'queue peak': peaks.render(strategy, workers.map(([w]) => w)),
          'kernel wait mean ms': meanMs(before, after, 'journey_accept_kernel_wait_seconds'),
          'listen overflows': sharedDelta(before, after, 'journey_listen_overflows_total')
        })
      } finally {
        await server.stop()
      }
    }
    return {
      rows,
      notes: [
        'Client and server share this machine\'s two cores; connect latency includes the client\'s own scheduling.',
        'Accepted per worker: connections each worker took (single: one number). Kernel wait: TCP_INFO at accept, jiffy resolution.',
        'Queue peak: journey_accept_queue_peak of the HTTP listener polled during the storm (which starts once every worker\'s sampler has reported, or after 10 s) — the deepest queue the sampler saw in its 15 s window, so the warm-up (200 connections, 16 at a time) can be in it. No more than --concurrency connections can wait at once.',
        'Per worker, in the order of the accepted column: reuseport workers each have a queue (their peaks need not be simultaneous, so they are not added up). cluster-shared workers read the one queue they share, cluster-rr workers the primary\'s (found among their parent\'s sockets): its deepest reading.',
        'Listen overflows: TcpExt ListenOverflows, namespace-wide (every worker reports the same count: counted once) — handshakes the kernel dropped because the accept queue was full; the client retries its SYN after 1 s.',
        'Dropped: connections Node closed unserved at MAX_CONNECTIONS (--maxConnections; per worker), journey_connections_dropped_total. Their clients fail (failed column).',
        ...failures.map(f => `Failed ${f}`)
      ]
    }
  }
})

/**
 * The first scrape in which every worker's accept-queue sampler has reported (at most `ms` of waiting; the
 * last scrape if some never do). A sampler reports only after its thread has started and read the queue once
 * — on a busy machine that can take longer than a small storm (a CI run read no queue at all for
 * cluster-rr) — and a storm over before then would show as no reading, not as the queue it built.
 */
async function samplersReady (server: ExperimentServer, workers: number, ms = 10_000): Promise<Metrics> {
  const deadline = Date.now() + ms
  for (;;) {
    const m = await server.scrape()
    if ([...series(m, 'journey_accept_queue_peak', { listener: 'http' })].length >= workers || Date.now() > deadline) return m
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function storm (server: ExperimentServer, total: number, concurrency: number, onProgress: (done: number) => void): Promise<Phases[]> {
  const out: Phases[] = []
  let next = 0
  async function loop (): Promise<void> {
    while (next < total) {
      next++
      out.push(await timedRequest({ host: server.host, port: server.http }))
      if (out.length % 500 === 0) onProgress(out.length)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  return out
}

/**
 * The deepest accept queue each worker's sampler reported across the polls, kept per worker: adding them up
 * made cluster-shared's one queue, read by both workers, twice as deep as it was (123 with 64 clients).
 */
export class QueuePeaks {
  private readonly byWorker = new Map<string, number>()
  add (m: Metrics): void {
    for (const [labels, v] of series(m, 'journey_accept_queue_peak', { listener: 'http' })) {
      const w = labels.get('worker') ?? ''
      this.byWorker.set(w, Math.max(v, this.byWorker.get(w) ?? -1))
    }
  }

  /** '64'; '31 / 33' (a queue each, in `order`); '62' for workers reading one queue (shared, or the primary's); '—' when none was reported. */
  render (strategy: string, order: string[]): string {
    if (this.byWorker.size === 0) return '—'
    if (this.byWorker.size === 1 || strategy === 'cluster-shared' || strategy === 'cluster-rr') return String(Math.max(...this.byWorker.values()))
    const rest = [...this.byWorker.keys()].filter(w => !order.includes(w)).sort()
    return [...order, ...rest].filter(w => this.byWorker.has(w)).map(w => this.byWorker.get(w)).join(' / ')
  }
}

/** "12 × read ECONNRESET, 3 × HTTP 503": what the failed requests saw, most frequent first. */
function summarizeFailures (failed: Phases[]): string {
  const counts = new Map<string, number>()
  for (const p of failed) {
    const reason = p.error ?? (p.status === 0 ? 'closed without a response' : `HTTP ${p.status}`)
    counts.set(reason, (counts.get(reason) ?? 0) + 1)
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n} × ${r}`).join(', ')
}
