// Experiment `parse`: what the HTTP parser's work looks like — many headers, one huge header, several
// requests in one read (pipelining), one request across many reads — in both precision modes.
//
// Hypothesis: parse (Node building the request, Fastify routing) grows with the number of headers, not
// with their bytes; pipelined requests after the first have almost no read stage (their bytes are already
// there); a request split over many reads has a long read and an ordinary parse. In the default mode the
// native tokenizing of the header bytes lands in read; JOURNEY_PRECISION=fine moves it into parse.
import { connect } from 'node:net'
import { experiment } from './lib/experiment.ts'
import { addGrowth, meanMs, type Metrics } from './lib/metrics.ts'
import { configurable, startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'
import { turnShare } from './lib/one-at-a-time.ts'

interface Shape { variant: string, headers: string, pipelined: number, pieces: number }

const SHAPES: Shape[] = [
  { variant: '3 headers', headers: 'Accept: */*\r\nUser-Agent: parse\r\n', pipelined: 1, pieces: 1 },
  { variant: '100 headers', headers: Array.from({ length: 100 }, (_, i) => `X-Header-${i}: ${'v'.repeat(36)}\r\n`).join(''), pipelined: 1, pieces: 1 },
  { variant: 'one 12 KiB header', headers: `X-Big: ${'b'.repeat(12 * 1024)}\r\n`, pipelined: 1, pieces: 1 },
  { variant: '10 pipelined', headers: 'Accept: */*\r\n', pipelined: 10, pieces: 1 },
  { variant: '1 request in 20 reads', headers: 'Accept: */*\r\nUser-Agent: parse\r\n', pipelined: 1, pieces: 20 }
]

export const parse = experiment({
  name: 'parse',
  hypothesis: 'Parse grows with the number of headers; pipelined requests have almost no read; a request in pieces has a long read and an ordinary parse; fine mode moves native tokenizing from read to parse.',
  options: { rounds: 300, turns: 10, pieceGapMs: 2, warmupRounds: 50 },
  chart: { title: 'Read and parse stages per request shape (means)', unit: 'ms', series: [{ label: 'read (default mode)', key: 'read default ms' }, { label: 'parse (default mode)', key: 'parse default ms' }, { label: 'read (fine)', key: 'read fine ms' }, { label: 'parse (fine)', key: 'parse fine ms' }] },
  async run (opts, progress) {
    const results = new Map<string, Record<string, number | string>>(SHAPES.map(s => [s.variant, { variant: s.variant }]))
    for (const precision of configurable() ? ['default', 'fine'] as const : ['target'] as const) {
      const server = await startServer({ JOURNEY_PRECISION: precision })
      try {
        // Every shape first, in turn, so the first one measured does not pay for V8 compiling the server's code
        // (the one in pieces left out: it would take 40 ms a round, and its code is the others').
        for (let i = 0; i < opts.warmupRounds; i++) {
          for (const shape of SHAPES) if (shape.pieces === 1) await exchange(server, shape, opts.pieceGapMs)
        }
        // The shapes take turns (`turns` of them, each a share of `rounds`): measured one after the other,
        // a shape measured later read ≈ 20 µs less parse on the same server, whatever the shape.
        const grew = new Map(SHAPES.map(s => [s.variant, new Map() as Metrics]))
        for (let turn = 0; turn < opts.turns; turn++) {
          const started = Date.now()
          for (const shape of SHAPES) {
            const rounds = shape.pieces > 1 ? Math.ceil(opts.rounds / 10) : opts.rounds
            const share = turnShare(turn, rounds, opts.turns)
            const before = await server.scrape()
            for (let i = 0; i < share; i++) await exchange(server, shape, opts.pieceGapMs)
            addGrowth(grew.get(shape.variant)!, before, await server.scrape())
          }
          progress(`${precision}: turn ${turn + 1}/${opts.turns}`)
          await annotate(`parse (${precision}): turn ${turn + 1}/${opts.turns}`, started, Date.now())
        }
        const none: Metrics = new Map()
        for (const shape of SHAPES) {
          const mean = (stage: string): number => meanMs(none, grew.get(shape.variant)!, 'journey_stage_duration_seconds', { stage, route: '/' })
          const row = results.get(shape.variant)!
          row['header KiB'] = shape.headers.length / 1024
          row[`read ${precision} ms`] = mean('read')
          row[`parse ${precision} ms`] = mean('parse')
        }
      } finally {
        await server.stop()
      }
    }
    return {
      rows: [...results.values()],
      notes: [
        'Means per request of route GET / from the stage histograms. Pipelined: 10 requests written at once on one keep-alive connection.',
        'In pieces: the request written in 20 pieces ' + opts.pieceGapMs + ' ms apart. Each shape runs on a fresh connection per round; the shapes take turns (`turns`).'
      ]
    }
  }
})

/** One connection: writes the shape's requests (pipelined, or in pieces), waits for every response. */
function exchange (server: ExperimentServer, shape: Shape, gapMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const one = `GET / HTTP/1.1\r\nHost: x\r\n${shape.headers}\r\n`
    const all = one.repeat(shape.pipelined - 1) + one.replace('Host: x\r\n', 'Host: x\r\nConnection: close\r\n')
    const s = connect(server.http, server.host, () => {
      if (shape.pieces === 1) { s.write(all); return }
      const size = Math.ceil(all.length / shape.pieces)
      let i = 0
      const timer = setInterval(() => {
        s.write(all.slice(i * size, (i + 1) * size))
        if (++i >= shape.pieces) clearInterval(timer)
      }, gapMs)
    })
    let got = ''
    s.on('data', (d: Buffer) => { got += d.toString('latin1') })
    s.on('error', reject)
    s.on('close', () => {
      const ok = got.split('HTTP/1.1 200').length - 1
      if (ok === shape.pipelined) resolve()
      else reject(new Error(`${shape.variant}: ${ok} of ${shape.pipelined} responses`))
    })
  })
}
