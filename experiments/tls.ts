// Experiment `tls`: what a TLS handshake costs, and what resumption and keep-alive save.
//
// Hypothesis: a full handshake costs the server a key exchange plus a signature with its certificate key —
// far more with RSA-2048 than ECDSA P-256; resuming a session skips the certificate and signature;
// keep-alive pays no handshake at all after the first. Both sides see it: the client's connect → secure
// time and the server's tls stage.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import selfsigned from 'selfsigned'
import { Agent, request } from 'undici'
import { experiment } from './lib/experiment.ts'
import { quantile, timedRequest, type Phases } from './lib/phase-client.ts'
import { addGrowth, delta, meanMs, type Metrics } from './lib/metrics.ts'
import { configurable, startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'
import { turnShare } from './lib/one-at-a-time.ts'

type Mode = 'full' | 'resumed' | 'keep-alive' | 'no TLS'

/** One row of the table: a server (its certificate's key type) and a way of connecting, with what its turns added up to. */
interface Variant {
  keyType: string
  mode: Mode
  server: ExperimentServer
  /** Resumed: each client loop's latest ticket, kept from turn to turn (so only a loop's very first handshake is full). */
  sessions: Array<Buffer | undefined>
  /** Keep-alive: one agent for every turn, so its connections' handshakes happen once, in the first turn. */
  agent: Agent | undefined
  phases: Phases[]
  ms: number
  cpuMs: number
  grew: Metrics
}

export const tls = experiment({
  name: 'tls',
  hypothesis: 'Full handshakes cost the server most (RSA far more than ECDSA); resumption skips the certificate work; keep-alive skips the handshake.',
  options: { connections: 600, concurrency: 8, warmup: 100, rounds: 10 },
  chart: { title: 'TLS: handshake latency and server CPU per request', unit: 'ms', series: [{ label: 'client handshake p50', key: 'client handshake p50 ms' }, { label: 'server tls stage mean', key: 'server tls mean ms' }, { label: 'server CPU per request', key: 'server CPU/request ms' }] },
  async run (opts, progress) {
    const dir = mkdtempSync(join(tmpdir(), 'journey-tls-'))
    const variants: Variant[] = []
    // Against a --url target the certificate is whatever it serves: one set of variants, named so.
    const keyTypes = configurable() ? ['ecdsa', 'rsa'] as const : ['target'] as const
    const servers: ExperimentServer[] = []
    try {
      for (const keyType of keyTypes) {
        const server = keyType === 'target' ? await startServer({}) : await startServer(await certificate(dir, keyType))
        servers.push(server)
        if (!Number.isFinite(server.https)) throw new Error('the tls experiment needs the target\'s HTTPS address: --https-url=https://host:port')
        // Uncounted handshakes of both kinds first, so the first variant measured does not pay for V8
        // compiling the server's code (a young server's first handshakes are dearer).
        await handshakes(server, opts.warmup, opts.concurrency, undefined)
        await handshakes(server, opts.warmup, opts.concurrency, Array.from({ length: opts.concurrency }, () => undefined))
        for (const mode of ['full', 'resumed', 'keep-alive', 'no TLS'] as const) {
          // Keep-alive has no handshake to compare, and plain HTTP (a new connection without TLS, what a
          // connection costs the server before any cryptography) no certificate: once, on the first server.
          if ((mode === 'keep-alive' || mode === 'no TLS') && keyType === 'rsa') continue
          if (mode === 'no TLS' && !Number.isFinite(server.http)) continue
          variants.push({
            keyType, mode, server,
            sessions: Array.from({ length: opts.concurrency }, () => undefined),
            agent: mode === 'keep-alive' ? new Agent({ connect: { rejectUnauthorized: false }, connections: opts.concurrency }) : undefined,
            phases: [], ms: 0, cpuMs: 0, grew: new Map()
          })
        }
      }
      // In turns, A B C … A B C …, with both servers up: measured one after the other, the first variant
      // ran on a server still getting faster, and the two certificates compared their moment in the run
      // as much as their cost.
      for (let round = 0; round < opts.rounds; round++) {
        const started = Date.now()
        const share = turnShare(round, opts.connections, opts.rounds)
        for (const v of variants) {
          const before = await v.server.scrape()
          const cpu0 = cpuMs(v.server)
          const t0 = performance.now()
          const phases = v.agent !== undefined
            ? await keepAlive(v.server, v.agent, share, opts.concurrency)
            : await handshakes(v.server, share, opts.concurrency, v.mode === 'resumed' ? v.sessions : undefined, v.mode !== 'no TLS')
          v.ms += performance.now() - t0
          v.cpuMs += cpuMs(v.server) - cpu0
          v.phases.push(...phases)
          addGrowth(v.grew, before, await v.server.scrape())
        }
        await annotate(`tls: round ${round + 1}/${opts.rounds}`, started, Date.now())
        progress(`tls: round ${round + 1}/${opts.rounds}`)
      }
    } finally {
      for (const v of variants) await v.agent?.close()
      for (const server of servers) await server.stop()
    }
    const none: Metrics = new Map()
    const rows = variants.map(v => {
      const handshake = v.phases.map(p => p.secure - p.connected)
      return {
        variant: v.mode === 'no TLS' ? 'no TLS (new connections)' : `${v.keyType} ${v.mode}`,
        'requests/s': Math.round(v.phases.length / (v.ms / 1000)),
        'full handshakes': delta(none, v.grew, 'journey_tls_handshake_duration_seconds_count', { resumed: 'false' }),
        'resumed handshakes': delta(none, v.grew, 'journey_tls_handshake_duration_seconds_count', { resumed: 'true' }),
        'client handshake p50 ms': quantile(handshake, 0.5),
        'client handshake p99 ms': quantile(handshake, 0.99),
        'server tls mean ms': meanMs(none, v.grew, 'journey_tls_handshake_duration_seconds'),
        'server CPU/request ms': v.cpuMs / v.phases.length
      }
    })
    return {
      rows,
      notes: [
        `The variants take turns (\`rounds\`), both servers up, after ${opts.warmup} uncounted full and ${opts.warmup} uncounted resumed handshakes on each.`,
        'Client handshake: TCP connected → secure on the client (not timed for keep-alive: undici opens its connections). Server tls stage: accepted → secureConnection (includes waiting for the client\'s ClientHello and, a round trip after the server\'s reply, its Finished).',
        ...configurable()
          ? ['Server CPU per request: the server process\'s time on the CPU over the variant\'s turns (every thread\'s /proc schedstat, in ns), divided by requests.',
              'Certificates generated for the run: ECDSA P-256 and RSA-2048, both self-signed.']
          : ['Server CPU per request: not measured (the target\'s process is not on this machine\'s /proc as ours).']
      ]
    }
  }
})

/** A fresh self-signed certificate of this key type, as the server's TLS_CERT/TLS_KEY. */
async function certificate (dir: string, keyType: 'ecdsa' | 'rsa'): Promise<Record<string, string>> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], keyType === 'ecdsa'
    ? { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' }
    : { keyType: 'rsa', keySize: 2048, algorithm: 'sha256' })
  writeFileSync(join(dir, `${keyType}.crt`), pems.cert)
  writeFileSync(join(dir, `${keyType}.key`), pems.private)
  return { TLS_CERT: join(dir, `${keyType}.crt`), TLS_KEY: join(dir, `${keyType}.key`) }
}

/**
 * The server process's CPU time in ms, summed over its threads' schedstat (nanoseconds on the CPU) rather
 * than read from /proc/PID/stat, whose 10 ms ticks are a tenth of a variant's difference at 100 requests.
 * NaN for a --url target, whose process is not ours to read.
 */
function cpuMs (server: ExperimentServer): number {
  const pid = server.child?.pid
  if (pid === undefined) return NaN
  let ns = 0
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try { ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]) } catch { /* the thread ended meanwhile */ }
  }
  return ns / 1e6
}

/**
 * `total` requests on new connections, `concurrency` at a time, over TLS unless `secure` is false. With
 * `sessions` (one slot per client loop, kept by the caller from call to call), each loop resumes the
 * session its previous handshake left.
 */
async function handshakes (server: ExperimentServer, total: number, concurrency: number, sessions: Array<Buffer | undefined> | undefined, secure = true): Promise<Phases[]> {
  const out: Phases[] = []
  let next = 0
  async function loop (slot: number): Promise<void> {
    while (next < total) {
      next++
      const p = await timedRequest(secure ? { host: server.host, port: server.https, tls: true, session: sessions?.[slot] } : { host: server.host, port: server.http })
      if (sessions !== undefined) sessions[slot] = p.session ?? sessions[slot]
      out.push(p)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, slot) => loop(slot)))
  // A loop's first connection has no ticket yet: it is a full handshake, counted as such.
  return out
}

async function keepAlive (server: ExperimentServer, agent: Agent, total: number, concurrency: number): Promise<Phases[]> {
  const out: Phases[] = []
  let next = 0
  async function loop (): Promise<void> {
    while (next < total) {
      next++
      const start = performance.now()
      const r = await request(`https://${server.host}:${server.https}/`, { dispatcher: agent })
      await r.body.text()
      // Each connection's one handshake happens inside undici, untimed: no client handshake time (the table's
      // —), where connected = secure = start said every request had a handshake of 0 ms.
      out.push({ start, connected: NaN, secure: NaN, written: start, firstByte: NaN, end: performance.now(), status: r.statusCode, error: undefined, resumed: true, session: undefined, traceId: undefined })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  return out
}
