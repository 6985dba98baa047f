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
import { delta, meanMs } from './lib/metrics.ts'
import { configurable, startServer, type ExperimentServer } from './lib/server.ts'
import { annotate } from './lib/report.ts'

export const tls = experiment({
  name: 'tls',
  hypothesis: 'Full handshakes cost the server most (RSA far more than ECDSA); resumption skips the certificate work; keep-alive skips the handshake.',
  options: { connections: 600, concurrency: 8, warmup: 100 },
  chart: { title: 'TLS: handshake latency and server CPU per request', unit: 'ms', series: [{ label: 'client handshake p50', key: 'client handshake p50 ms' }, { label: 'server tls stage mean', key: 'server tls mean ms' }, { label: 'server CPU per request', key: 'server CPU/request ms' }] },
  async run (opts, progress) {
    const dir = mkdtempSync(join(tmpdir(), 'journey-tls-'))
    const rows = []
    // Against a --url target the certificate is whatever it serves: one set of variants, named so.
    for (const keyType of configurable() ? ['ecdsa', 'rsa'] as const : ['target'] as const) {
      const server = keyType === 'target' ? await startServer({}) : await startServer(await certificate(dir, keyType))
      if (!Number.isFinite(server.https)) throw new Error('the tls experiment needs the target\'s HTTPS address: --https-url=https://host:port')
      try {
        // Uncounted handshakes of both kinds first, so the first variant measured does not pay for V8
        // compiling the server's code (a young server's first handshakes are dearer).
        await handshakes(server, opts.warmup, opts.concurrency, false, () => {})
        await handshakes(server, opts.warmup, opts.concurrency, true, () => {})
        for (const mode of ['full', 'resumed', 'keep-alive'] as const) {
          if (mode === 'keep-alive' && keyType === 'rsa') continue // no handshake to compare
          const before = await server.scrape()
          const cpu0 = cpuMs(server)
          const started = Date.now()
          const phases = mode === 'keep-alive'
            ? await keepAlive(server, opts.connections, opts.concurrency)
            : await handshakes(server, opts.connections, opts.concurrency, mode === 'resumed', (n) => progress(`${keyType} ${mode}: ${n}/${opts.connections}`))
          const seconds = (Date.now() - started) / 1000
          await annotate(`tls: ${keyType} ${mode}`, started, Date.now())
          const cpu = cpuMs(server) - cpu0
          const after = await server.scrape()
          rows.push({
            variant: `${keyType} ${mode}`,
            'requests/s': Math.round(phases.length / seconds),
            'full handshakes': delta(before, after, 'journey_tls_handshake_duration_seconds_count', { resumed: 'false' }),
            'resumed handshakes': delta(before, after, 'journey_tls_handshake_duration_seconds_count', { resumed: 'true' }),
            'client handshake p50 ms': quantile(phases.map(p => p.secure - p.connected), 0.5),
            'client handshake p99 ms': quantile(phases.map(p => p.secure - p.connected), 0.99),
            'server tls mean ms': meanMs(before, after, 'journey_tls_handshake_duration_seconds'),
            'server CPU/request ms': cpu / phases.length
          })
        }
      } finally {
        await server.stop()
      }
    }
    return {
      rows,
      notes: [
        'Client handshake: TCP connected → secure on the client (not timed for keep-alive: undici opens its connections). Server tls stage: accepted → secureConnection (includes waiting for the client\'s ClientHello and, a round trip after the server\'s reply, its Finished).',
        ...configurable()
          ? ['Server CPU per request: the server process\'s time on the CPU over the variant (every thread\'s /proc schedstat, in ns), divided by requests.',
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

async function handshakes (server: ExperimentServer, total: number, concurrency: number, resume: boolean, onProgress: (n: number) => void): Promise<Phases[]> {
  const out: Phases[] = []
  let next = 0
  async function loop (): Promise<void> {
    let session: Buffer | undefined
    while (next < total) {
      next++
      const p = await timedRequest({ host: server.host, port: server.https, tls: true, session: resume ? session : undefined })
      if (resume) session = p.session ?? session
      out.push(p)
      if (out.length % 100 === 0) onProgress(out.length)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  // A resumed loop's first connection has no ticket yet: it is a full handshake, counted as such.
  return out
}

async function keepAlive (server: ExperimentServer, total: number, concurrency: number): Promise<Phases[]> {
  const agent = new Agent({ connect: { rejectUnauthorized: false }, connections: concurrency })
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
  await agent.close()
  return out
}
