// The measuring loop of the experiments that send one request at a time over one keep-alive connection
// (hooks, serialize, errors; decode sends a few at a time): a warm-up of every variant, then the variants in turns, with the client's own
// time for each request and the server's histograms before and after each turn, so a variant's row can set
// what the client waited beside what each stage took.
import { Agent, request } from 'undici'
import { addGrowth, meanMs, type Metrics } from './metrics.ts'
import { startServer, type ExperimentServer } from './server.ts'
import { annotate } from './report.ts'

export interface OneAtATime {
  /** Mean of the client's time per request, sending the request to reading the last byte. */
  clientMeanMs: number
  /** Size of the last response body. */
  bytes: number
  /** Answers other than the expected status (200 unless told). */
  failed: number
  /** The server's metrics the variant's requests added up to, as two scrapes would show them (`before` empty). */
  before: Metrics
  after: Metrics
  /** Mean of a stage over the counted requests of `route` (ms; NaN if it never happened). */
  stageMeanMs: (route: string, stage: string) => number
}

/** One variant: what it sends, and the status every answer should have (default 200; others count as failed). */
export interface Variant extends Target { status?: number }

export interface InterleavedOptions {
  /** Counted requests of each variant, over all rounds. */
  requests: number
  /** How many turns each variant gets (`requests / rounds` requests a turn). */
  rounds: number
  /** Uncounted requests before each turn (a variant after one whose answers close the connection opens a new one then). */
  warmup: number
  /** Requests in flight at once within a turn (default 1; the agent needs as many connections). */
  concurrency?: number
  /** The Grafana annotation's text for each round (with GRAFANA_URL), and the progress line's. */
  label: string
  progress: (line: string) => void
}

/**
 * Starts the server with `env`, hands `fn` it and one keep-alive connection (an undici Agent with
 * `connections: 1` that accepts the development certificate, for HTTPS too), and stops both whatever
 * happens: the set-up every one-at-a-time experiment (hooks, serialize, errors) shares.
 */
export async function withOneConnection<T> (env: Record<string, string>, fn: (server: ExperimentServer, agent: Agent) => Promise<T>): Promise<T> {
  const server = await startServer(env)
  const agent = new Agent({ connections: 1, connect: { rejectUnauthorized: false } })
  try {
    return await fn(server, agent)
  } finally {
    await agent.close()
    await server.stop()
  }
}

/** What one variant sends: its path, and how (method and body, headers, HTTP or HTTPS). */
export interface Target {
  path: string
  /** A POST with `body` instead of a GET; over the server's HTTPS listener with `https` (the agent must accept its certificate). */
  opts?: { headers?: Record<string, string>, body?: string | Uint8Array, https?: boolean }
}

/**
 * Sends every variant's request `rounds` times, in turn, before any variant is measured. A young server
 * runs its first few hundred requests slowly while V8 compiles Fastify's and the journey's code, and a
 * warm-up of each variant just before it left that cost on whichever variant came first: the `errors`
 * experiment's valid body read 0.6–0.95 ms against 0.35 ms once the server was warm, and the `hooks`
 * experiment's 0 ms hook had 1.0 ms of stages against 0.5 ms for the others (2026-12-04).
 */
export async function warmUp (server: Where, agent: Agent, targets: readonly Target[], rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    for (const t of targets) await send(server, agent, t.path, t.opts ?? {})
  }
}

interface Sent { status: number, bytes: number, ms: number }
/** Where requests go: the part of a server the sending needs. */
type Where = Pick<ExperimentServer, 'host' | 'http' | 'https'>

async function send (server: Where, agent: Agent, path: string, opts: Target['opts'] & {}): Promise<Sent> {
  const url = opts.https === true ? `https://${server.host}:${server.https}${path}` : `http://${server.host}:${server.http}${path}`
  const t0 = performance.now()
  const r = await request(url, { method: opts.body === undefined ? 'GET' : 'POST', headers: opts.headers, body: opts.body, dispatcher: agent })
  const body = await r.body.arrayBuffer()
  return { status: r.statusCode, bytes: body.byteLength, ms: performance.now() - t0 }
}

/** How many of `total` requests turn `turn` (from 0) of `turns` gets: spread evenly, adding up to exactly `total`. */
export function turnShare (turn: number, total: number, turns: number): number {
  return Math.floor((turn + 1) * total / turns) - Math.floor(turn * total / turns)
}

/**
 * Measures the variants in turns — A B C … A B C … — `opts.rounds` times, on one keep-alive connection
 * (`agent`: an undici Agent with `connections: 1`; with `opts.concurrency`, that many), and returns a
 * result per variant. In turns, because a
 * server kept getting faster all through a run even after thousands of warm-up requests: the same valid
 * POST measured four times in a row read 0.44, 0.30, 0.11 and 0.07 ms (errors experiment, 2026-12-04), so
 * variants measured one after the other compared when they ran, not what they cost. Taking turns gives every
 * variant the same share of the run, as the bench does for its variants. Each turn's server-side figures
 * are the histograms' growth between a scrape before and after it, added up over the turns.
 */
export async function interleaved (server: ExperimentServer, agent: Agent, variants: readonly Variant[], opts: InterleavedOptions): Promise<OneAtATime[]> {
  const acc = variants.map(() => ({ client: 0, n: 0, bytes: 0, failed: 0, grew: new Map() as Metrics }))
  for (let round = 0; round < opts.rounds; round++) {
    const started = Date.now()
    const perTurn = turnShare(round, opts.requests, opts.rounds)
    for (const [i, v] of variants.entries()) {
      const a = acc[i]!
      for (let k = 0; k < opts.warmup; k++) await send(server, agent, v.path, v.opts ?? {})
      const before = await server.scrape()
      let sent = 0
      const loop = async (): Promise<void> => {
        while (sent < perTurn) {
          sent++
          const r = await send(server, agent, v.path, v.opts ?? {})
          a.client += r.ms
          a.n++
          a.bytes = r.bytes
          if (r.status !== (v.status ?? 200)) a.failed++
        }
      }
      await Promise.all(Array.from({ length: opts.concurrency ?? 1 }, loop))
      const after = await server.scrape()
      addGrowth(a.grew, before, after)
    }
    await annotate(`${opts.label}: round ${round + 1}/${opts.rounds}`, started, Date.now())
    opts.progress(`${opts.label}: round ${round + 1}/${opts.rounds}`)
  }
  const none: Metrics = new Map()
  return acc.map(a => ({
    clientMeanMs: a.client / a.n,
    bytes: a.bytes,
    failed: a.failed,
    before: none,
    after: a.grew,
    stageMeanMs: (route: string, stage: string) => meanMs(none, a.grew, 'journey_stage_duration_seconds', { route, stage })
  }))
}
