// Experiment `event-loop`: a CPU-bound handler blocking the event loop, next to light requests.
//
// Hypothesis: while /compute burns the loop, a light `GET /` on a new connection cannot be accepted or
// read, so its wait lands before its stages — in the kernel (accept queue, receive queue) — not in its
// handler, whose stage stays microseconds. Offloading the same work to worker threads removes the wait.
import { experiment } from './lib/experiment.ts'
import { quantile, timedRequest, type Phases } from './lib/phase-client.ts'
import { meanMs, most } from './lib/metrics.ts'
import { startServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'
import { estimateOffset, join, timeline, type ClockOffset, type Joined } from './lib/join.ts'

export const eventLoop = experiment({
  name: 'event-loop',
  hypothesis: 'A blocked event loop shows up as kernel wait before accept for light requests, not as handler time; offloading removes it.',
  options: { seconds: 8, computeMs: 40, heavyConcurrency: 2, lightIntervalMs: 20 },
  chart: { title: 'Light GET / beside a CPU-bound handler', unit: 'ms', series: [{ label: 'client: response p99', key: 'light response p99 ms' }, { label: 'server: kernel wait before accept (mean)', key: 'kernel wait mean ms' }, { label: 'server: handler stage of / (mean)', key: 'handler mean ms' }] },
  async run (opts, progress) {
    const rows = []
    const notes: string[] = []
    const requests: Array<Joined & { variant: string }> = []
    for (const variant of ['on the loop', 'offloaded'] as const) {
      // The light requests carry a traceparent: the server traces exactly those, for the join below.
      const server = await startServer({ COMPUTE_MAX_MS: '1000' }, { traces: true })
      const light: Phases[] = []
      const heavyTraces: string[] = []
      let row: Record<string, string | number>
      try {
        const before = await server.scrape()
        const started = Date.now()
        const end = started + opts.seconds * 1000
        const heavyPath = `/compute?ms=${opts.computeMs}${variant === 'offloaded' ? '&offload=1' : ''}`
        let heavy = 0
        const heavyLoop = async (): Promise<void> => {
          while (Date.now() < end) {
            // Traced too: its handler span says how much of the handler held the loop (journey.handler.sync_ms).
            const p = await timedRequest({ host: server.host, port: server.http, path: heavyPath, trace: true })
            if (p.traceId !== undefined) heavyTraces.push(p.traceId)
            heavy++
          }
        }
        const lightLoop = async (): Promise<void> => {
          while (Date.now() < end) {
            const t = Date.now()
            light.push(await timedRequest({ host: server.host, port: server.http, path: '/', trace: true }))
            if (light.length % 50 === 0) progress(`${variant}: ${light.length} light, ${heavy} heavy requests`)
            await new Promise(resolve => setTimeout(resolve, Math.max(0, opts.lightIntervalMs - (Date.now() - t))))
          }
        }
        await Promise.all([...Array.from({ length: opts.heavyConcurrency }, heavyLoop), lightLoop()])
        await annotate(`event-loop: ${variant}`, started, Date.now())
        const after = await server.scrape()
        row = {
          variant,
          'light requests': light.length,
          'heavy requests': heavy,
          'light response p50 ms': quantile(light.map(p => p.end - p.start), 0.5),
          'light response p99 ms': quantile(light.map(p => p.end - p.start), 0.99),
          'kernel wait mean ms': meanMs(before, after, 'journey_accept_kernel_wait_seconds'),
          'handler mean ms': meanMs(before, after, 'journey_stage_duration_seconds', { route: '/', stage: 'handler' }),
          'event-loop p99 ms': most(after, 'nodejs_eventloop_lag_p99_seconds') * 1000
        }
      } finally {
        await server.stop() // flushes the server's spans to our receiver
      }
      if (server.spans !== undefined) {
        const handlers = heavyTraces.flatMap(id => server.spans!(id)).filter(s => s.name === 'journey.handler')
        row['heavy handler mean ms'] = mean(handlers.map(s => s.end - s.start))
        row['of it synchronous mean ms'] = mean(handlers.map(s => s.attributes['journey.handler.sync_ms']).filter((v): v is number => typeof v === 'number'))
      }
      // Each light request from both sides: the client's marks and the server's spans of its trace.
      const pairs = server.spans === undefined ? [] : light.map(phases => ({ phases, spans: server.spans!(phases.traceId!) }))
      const clock = estimateOffset(pairs)
      const joined = pairs.flatMap(({ phases, spans }) => join(phases, spans, clock.offsetMs) ?? [])
      if (joined.length > 0) {
        row['server clock offset ms'] = clock.offsetMs
        row['joined requests'] = joined.length
        row['client connected → server accept mean ms'] = mean(joined.map(j => j.connectedToAcceptMs))
        row['TCP_INFO accept wait of the same mean ms'] = mean(joined.flatMap(j => j.server.kernelWaitMs ?? []))
        row['TCP_INFO read wait of the same mean ms'] = mean(joined.flatMap(j => j.server.readKernelWaitMs ?? []))
        const slowest = joined.reduce((a, b) => b.client.end > a.client.end ? b : a)
        notes.push(`${variant}: ${clockNote(clock)}`)
        notes.push(`Slowest light request ${variant}, both sides on one clock (trace ${slowest.traceId}):`, ...timeline(slowest).map(l => `  ${l}`))
        requests.push(...joined.map(j => ({ variant, ...j })))
      } else if (server.spans === undefined) {
        notes.push('No client/server join: the spans of a --url target go to its own collector.')
      }
      rows.push(row)
    }
    return {
      rows,
      notes: [
        'Kernel wait: TCP_INFO at accept over every connection in the window (light and heavy), jiffy resolution.',
        'Heavy handler: the /compute requests\' handler spans (traced), and how much of that stage was the handler\'s synchronous part, holding the event loop (journey.handler.sync_ms).',
        'Handler mean: the light route only. Event-loop p99: prom-client\'s monitorEventLoopDelay over the window (of the slowest worker, for a --url cluster) (prom-client resets it at every scrape, and the window starts with one; with --url, a scrape by your own Prometheus shortens it).',
        'Joined (light requests, traced through a sampled traceparent): client connected → server accept is measured across both processes\' clocks; TCP_INFO says the same from inside the kernel (4 ms jiffies): the accept-queue wait, and the receive-queue wait of the request\'s bytes when the loop was blocked after accepting.',
        ...notes
      ],
      requests
    }
  }
})

function clockNote (c: ClockOffset): string {
  const bounds = `causality allows a server-minus-client offset of ${c.lowerMs.toFixed(2)} … ${c.upperMs.toFixed(2)} ms over ${c.requests} requests`
  if (c.lowerMs > c.upperMs) return `the marks contradict each other (${bounds}); server times are not corrected.`
  if (c.offsetMs === 0) return `the two clocks agree as far as the requests can tell (${bounds}); no correction.`
  return `the server's clock read ${c.offsetMs.toFixed(2)} ms ${c.offsetMs > 0 ? 'ahead of' : 'behind'} the client's (${bounds}); server times are corrected by that.`
}

function mean (xs: number[]): number {
  const v = xs.filter(Number.isFinite)
  return v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length
}
