// Experiment `slow-client`: clients that dribble their request a byte at a time, next to normal clients.
//
// Hypothesis: a request whose headers arrive slowly has a long read stage and an ordinary parse stage
// (the server only parses what has arrived); clients that never finish are cut off by HEADERS_TIMEOUT_MS
// (408) and counted; normal clients on the same server are not starved, because a waiting connection
// costs a socket, not the event loop.
import { connect } from 'node:net'
import { Agent, request } from 'undici'
import { experiment } from './lib/experiment.ts'
import { quantile } from './lib/phase-client.ts'
import { delta, meanMs } from './lib/metrics.ts'
import { startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'

const REQUEST = 'GET / HTTP/1.1\r\nHost: slow.example\r\nUser-Agent: dribbler\r\nAccept: */*\r\n\r\n'

export const slowClient = experiment({
  name: 'slow-client',
  hypothesis: 'Dribbled headers lengthen read, not parse; never-finishing clients are cut off at the header timeout; normal clients keep their latency.',
  options: { seconds: 6, slow: 100, headersTimeoutMs: 2000 },
  chart: { title: 'Normal clients beside slow ones', unit: 'ms', series: [{ label: 'normal clients p99', key: 'normal p99 ms' }, { label: 'read stage mean (GET /)', key: 'read mean ms' }, { label: 'parse stage mean (GET /)', key: 'parse mean ms' }] },
  async run (opts, progress) {
    const rows = []
    for (const variant of ['normal clients only', 'slow but complete', 'slowloris (never complete)'] as const) {
      const server = await startServer({ HEADERS_TIMEOUT_MS: String(opts.headersTimeoutMs), REQUEST_TIMEOUT_MS: String(opts.headersTimeoutMs * 2) })
      try {
        const before = await server.scrape()
        const started = Date.now()
        const end = started + opts.seconds * 1000
        const outcome = { completed: 0, cutOff: 0 }
        const slow = variant === 'normal clients only'
          ? []
          : Array.from({ length: opts.slow }, () => dribble(server, end, variant === 'slow but complete' ? 1000 : 60_000, outcome))
        const normal = await normalLoad(server, end, (n) => progress(`${variant}: ${n} normal requests`))
        await Promise.all(slow)
        await annotate(`slow-client: ${variant}`, started, Date.now())
        const after = await server.scrape()
        const mean = (stage: string): number => meanMs(before, after, 'journey_stage_duration_seconds', { stage, route: '/' })
        rows.push({
          variant,
          'normal requests': normal.length,
          'normal p50 ms': quantile(normal, 0.5),
          'normal p99 ms': quantile(normal, 0.99),
          'slow completed': outcome.completed,
          'slow cut off': outcome.cutOff,
          'read mean ms': mean('read'),
          'parse mean ms': mean('parse'),
          'header timeouts counted': delta(before, after, 'journey_connection_errors_total', { reason: 'request_timeout' })
        })
      } finally {
        await server.stop()
      }
    }
    return {
      rows,
      notes: [
        'Normal clients: keep-alive GET /compute?ms=0 (its own route), 4 in flight. Read/parse: route GET /, where the slow clients go.',
        'Read/parse means come from the stage histograms\' _sum/_count: exact, unlike bucket quantiles.'
      ]
    }
  }
})

/** Sends REQUEST spread over `spreadMs` (a byte at a time), repeatedly until `end`; counts how it ended. */
async function dribble (server: ExperimentServer, end: number, spreadMs: number, outcome: { completed: number, cutOff: number }): Promise<void> {
  while (Date.now() < end) {
    const result = await new Promise<'completed' | 'cut off'>(resolve => {
      const s = connect(server.http, server.host)
      let i = 0
      let got = ''
      const timer = setInterval(() => {
        if (i < REQUEST.length && !s.destroyed) s.write(REQUEST[i++]!)
        if (i >= REQUEST.length || Date.now() > end + 5000) clearInterval(timer)
      }, spreadMs / REQUEST.length)
      s.on('data', (d: Buffer) => { got += d.toString('latin1') })
      s.on('error', () => {})
      s.on('close', () => { clearInterval(timer); resolve(/^HTTP\/1\.1 200/.test(got) ? 'completed' : 'cut off') })
      s.on('data', () => { if (/^HTTP\/1\.1 200[\s\S]*\r\n\r\n/.test(got)) s.end() })
    })
    if (result === 'completed') outcome.completed++
    else outcome.cutOff++
  }
}

async function normalLoad (server: ExperimentServer, end: number, onProgress: (n: number) => void): Promise<number[]> {
  const agent = new Agent({ connections: 4 })
  const times: number[] = []
  const loop = async (): Promise<void> => {
    while (Date.now() < end) {
      const t = performance.now()
      const r = await request(`http://${server.host}:${server.http}/compute?ms=0`, { dispatcher: agent })
      await r.body.dump()
      times.push(performance.now() - t)
      if (times.length % 1000 === 0) onProgress(times.length)
    }
  }
  await Promise.all([loop(), loop(), loop(), loop()])
  await agent.close()
  return times
}
