// Experiment `write`: a large response to clients that read at different speeds.
//
// Hypothesis: the write stage ends when the last byte is handed to the kernel, so for a body larger than
// the socket buffers it lasts as long as the client takes to read: the server waits on backpressure
// ('drain'), and the write stage — not the handler — shows a slow reader. The handler stays the same.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { experiment } from './lib/experiment.ts'
import { meanMs } from './lib/metrics.ts'
import { startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'

export const write = experiment({
  name: 'write',
  hypothesis: 'For a large response the write stage lasts as long as the client takes to read it; a slow reader shows up in write, not in the handler.',
  options: { kb: 8192, requests: 6, warmup: 3 },
  chart: { title: 'An 8 MiB download read at different speeds (means)', unit: 'ms', series: [{ label: 'client: download time', key: 'client time ms' }, { label: 'server: write stage', key: 'write mean ms' }, { label: 'server: handler stage', key: 'handler mean ms' }] },
  async run (opts, progress) {
    // The downloads carry a sampled traceparent: the server traces them, and their write spans say what its
    // kernel still held unacknowledged when the write ended (journey.write.unacked_bytes).
    const server = await startServer({}, { traces: true })
    const rows = []
    const traced: Array<{ traces: string[], bytesPerSecond: number }> = []
    try {
      // Uncounted downloads first: the first variant would otherwise pay for V8 compiling the server's code.
      for (let i = 0; i < opts.warmup; i++) await download(server, opts.kb, Infinity)
      for (const [variant, bytesPerSecond] of [['fast reader', Infinity], ['reads 32 MiB/s', 32 * 1024 * 1024], ['reads 8 MiB/s', 8 * 1024 * 1024]] as const) {
        const before = await server.scrape()
        const started = Date.now()
        const times: number[] = []
        const traces: string[] = []
        for (let i = 0; i < opts.requests; i++) {
          const d = await download(server, opts.kb, bytesPerSecond)
          times.push(d.ms)
          traces.push(d.traceId)
          progress(`${variant}: ${i + 1}/${opts.requests}`)
        }
        await annotate(`write: ${variant}`, started, Date.now())
        const after = await server.scrape()
        const mean = (stage: string): number => meanMs(before, after, 'journey_stage_duration_seconds', { stage, route: '/download' })
        rows.push({
          variant,
          'response MiB': opts.kb / 1024,
          'client time ms': times.reduce((a, b) => a + b, 0) / times.length,
          'write mean ms': mean('write'),
          'handler mean ms': mean('handler'),
          'unacked at write end MiB': NaN,
          'unacked ÷ read rate ms': NaN
        })
        traced.push({ traces, bytesPerSecond })
      }
    } finally {
      await server.stop() // flushes the server's spans to this process's receiver
    }
    // What the kernel still held when write ended, and how long the reader needs for that at its rate: the
    // part of the client's time the server cannot see, from the server's side.
    rows.forEach((row, i) => {
      const { traces, bytesPerSecond } = traced[i]!
      const held = traces.flatMap(id => server.spans?.(id) ?? []).filter(s => s.name === 'journey.write')
        .map(s => s.attributes['journey.write.unacked_bytes']).filter((b): b is number => typeof b === 'number')
      if (held.length === 0) return
      const bytes = held.reduce((a, b) => a + b, 0) / held.length
      row['unacked at write end MiB'] = bytes / (1024 * 1024)
      // A reader without a rate has none to divide by.
      row['unacked ÷ read rate ms'] = Number.isFinite(bytesPerSecond) ? 1000 * bytes / bytesPerSecond : NaN
    })
    return {
      rows,
      notes: [
        'Client time: request written → last byte read, one download at a time on its own connection; a slow reader pauses its socket to hold its rate.',
        'Unacked at write end: the write spans\' journey.write.unacked_bytes (mean), what the server\'s kernel held that the client had not acknowledged when the write stage ended; ÷ the reader\'s rate, how long the reader still had to read it (compare client time − write − handler).'
      ]
    }
  }
})

/** Downloads /download?kb=… on a new connection, reading no faster than `bytesPerSecond`, as a sampled trace; resolves with ms and the trace id. */
function download (server: ExperimentServer, kb: number, bytesPerSecond: number): Promise<{ ms: number, traceId: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(server.http, server.host)
    const start = performance.now()
    const traceId = randomBytes(16).toString('hex')
    let received = 0
    s.write(`GET /download?kb=${kb} HTTP/1.1\r\nHost: x\r\ntraceparent: 00-${traceId}-${randomBytes(8).toString('hex')}-01\r\nConnection: close\r\n\r\n`)
    s.on('data', (d: Buffer) => {
      received += d.length
      if (!Number.isFinite(bytesPerSecond)) return
      // Ahead of the allowed rate? Stop reading until we are not: the kernel buffers fill, the server waits.
      const due = (received / bytesPerSecond) * 1000 - (performance.now() - start)
      if (due > 1) { s.pause(); setTimeout(() => s.resume(), due) }
    })
    s.on('error', reject)
    s.on('close', () => resolve({ ms: performance.now() - start, traceId }))
  })
}
