// Experiment `event-loop`: a CPU-bound handler blocking the event loop, next to light requests.
//
// Hypothesis: while /compute burns the loop, a light `GET /` on a new connection cannot be accepted or
// read, so its wait lands before its stages — in the kernel (accept queue, receive queue) — not in its
// handler, whose stage stays microseconds. Offloading the same work to worker threads removes the wait.
import { experiment } from './lib/experiment.ts'
import { quantile, timedRequest, type Phases } from './lib/phase-client.ts'
import { meanMs, startServer, sum } from './lib/server.ts'
import { annotate } from './lib/report.ts'

export const eventLoop = experiment({
  name: 'event-loop',
  hypothesis: 'A blocked event loop shows up as kernel wait before accept for light requests, not as handler time; offloading removes it.',
  options: { seconds: 8, computeMs: 40, heavyConcurrency: 2, lightIntervalMs: 20 },
  chart: { title: 'Light GET / beside a CPU-bound handler', unit: 'ms', series: [{ label: 'client: response p99', key: 'light response p99 ms' }, { label: 'server: kernel wait before accept (mean)', key: 'kernel wait mean ms' }, { label: 'server: handler stage of / (mean)', key: 'handler mean ms' }] },
  async run (opts, progress) {
    const rows = []
    for (const variant of ['on the loop', 'offloaded'] as const) {
      const server = await startServer({ COMPUTE_MAX_MS: '1000' })
      try {
        const before = await server.scrape()
        const started = Date.now()
        const end = started + opts.seconds * 1000
        const heavyPath = `/compute?ms=${opts.computeMs}${variant === 'offloaded' ? '&offload=1' : ''}`
        let heavy = 0
        const heavyLoop = async (): Promise<void> => {
          while (Date.now() < end) { await timedRequest({ host: server.host, port: server.http, path: heavyPath }); heavy++ }
        }
        const light: Phases[] = []
        const lightLoop = async (): Promise<void> => {
          while (Date.now() < end) {
            const t = Date.now()
            light.push(await timedRequest({ host: server.host, port: server.http, path: '/' }))
            if (light.length % 50 === 0) progress(`${variant}: ${light.length} light, ${heavy} heavy requests`)
            await new Promise(resolve => setTimeout(resolve, Math.max(0, opts.lightIntervalMs - (Date.now() - t))))
          }
        }
        await Promise.all([...Array.from({ length: opts.heavyConcurrency }, heavyLoop), lightLoop()])
        await annotate(`event-loop: ${variant}`, started, Date.now())
        const after = await server.scrape()
        rows.push({
          variant,
          'light requests': light.length,
          'heavy requests': heavy,
          'light response p50 ms': quantile(light.map(p => p.end - p.start), 0.5),
          'light response p99 ms': quantile(light.map(p => p.end - p.start), 0.99),
          'kernel wait mean ms': meanMs(before, after, 'journey_accept_kernel_wait_seconds'),
          'handler mean ms': meanMs(before, after, 'journey_stage_duration_seconds', { route: '/', stage: 'handler' }),
          'event-loop p99 ms': (sum(after, 'nodejs_eventloop_lag_p99_seconds')) * 1000
        })
      } finally {
        await server.stop()
      }
    }
    return {
      rows,
      notes: [
        'Kernel wait: TCP_INFO at accept over every connection in the window (light and heavy), jiffy resolution.',
        'Handler mean: the light route only. Event-loop p99: prom-client\'s monitorEventLoopDelay since the process started.'
      ]
    }
  }
})
