// The measuring loop of the experiments that send one request at a time over one keep-alive connection
// (hooks, serialize, errors): the client's own time for each, and the server's histograms before and after, so a
// variant's row can set what the client waited beside what each stage took.
import { Agent, request } from 'undici'
import { meanMs, type Metrics } from './metrics.ts'
import { startServer, type ExperimentServer } from './server.ts'
import { annotate } from './report.ts'

export interface OneAtATime {
  /** Mean of the client's time per request, sending the request to reading the last byte. */
  clientMeanMs: number
  /** Size of the last response body. */
  bytes: number
  /** Answers other than the expected status (200 unless told). */
  failed: number
  before: Metrics
  after: Metrics
  /** Mean of a stage over the counted requests of `route` (ms; NaN if it never happened). */
  stageMeanMs: (route: string, stage: string) => number
}

export interface OneAtATimeOptions {
  requests: number
  /** Requests sent first and not counted (V8 compiles code on its first calls). */
  warmup?: number
  headers?: Record<string, string>
  /** A POST with this body instead of a GET. */
  body?: string | Uint8Array
  /** Over the server's HTTPS listener (the agent must accept its certificate). */
  https?: boolean
  /** The status every answer should have (default 200); others count as failed. */
  status?: number
  /** The Grafana annotation's text (with GRAFANA_URL), and the progress line's. */
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
export interface Target { path: string, opts?: Pick<OneAtATimeOptions, 'headers' | 'body' | 'https'> }

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

/** `agent`: an undici Agent with `connections: 1`, shared by the run's variants, so every request rides one connection. */
export async function oneAtATime (server: ExperimentServer, agent: Agent, path: string, opts: OneAtATimeOptions): Promise<OneAtATime> {
  const get = async (): Promise<Sent> => await send(server, agent, path, opts)
  for (let i = 0; i < (opts.warmup ?? 0); i++) await get()
  const before = await server.scrape()
  const started = Date.now()
  let client = 0
  let bytes = 0
  let failed = 0
  for (let i = 0; i < opts.requests; i++) {
    const r = await get()
    client += r.ms
    bytes = r.bytes
    if (r.status !== (opts.status ?? 200)) failed++
    if (i % 10 === 9) opts.progress(`${opts.label}: ${i + 1}/${opts.requests}`)
  }
  await annotate(opts.label, started, Date.now())
  const after = await server.scrape()
  return {
    clientMeanMs: client / opts.requests,
    bytes,
    failed,
    before,
    after,
    stageMeanMs: (route, stage) => meanMs(before, after, 'journey_stage_duration_seconds', { route, stage })
  }
}
