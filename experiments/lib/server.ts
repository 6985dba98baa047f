// Starts the real server (src/main.ts) for an experiment with the configuration it needs, waits until it is
// ready, scrapes its metrics, and stops it — the experiment never leaves a process behind. Or, with
// `--url`, points the experiment at a server somebody else runs (the compose stack, a staging box): then
// nothing is started or stopped, and the configuration a variant asks for is reported as not applied.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { scrape, type Metrics } from './metrics.ts'
import { startSpanReceiver, type ReceivedSpan } from './span-receiver.ts'

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

export interface ExperimentServer {
  host: string
  http: number
  /** NaN when a --url target has no HTTPS URL. */
  https: number
  metrics: number
  /** Undefined for a --url target (its CPU time cannot be read from here). */
  child: ChildProcess | undefined
  /** The server's /metrics, parsed into `name{labels}` → value. */
  scrape: () => Promise<Metrics>
  /**
   * Started with `traces`: the spans the server exported for a trace the phase client started.
   * Complete after stop() (shutdown flushes the span queue). Undefined for a --url target.
   */
  spans: ((traceId: string) => ReceivedSpan[]) | undefined
  stop: () => Promise<void>
}

export interface StartOptions {
  /** taskset CPU list for the server process. */
  cpus?: string
  /**
   * Export the spans of requests that carry a sampled traceparent (the phase client's `trace`) to a
   * receiver in this process; other requests stay unsampled (parent-based, always off at the root).
   */
  traces?: boolean
}

/**
 * `n` ports the kernel says are free, all different: they are held open together and only then released
 * (asking for one port at a time can hand back the same port twice — seen in CI: HTTP and HTTPS got 40151).
 */
export async function freePorts (n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer())
  await Promise.all(servers.map(s => new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))))
  const ports = servers.map(s => (s.address() as AddressInfo).port)
  await Promise.all(servers.map(s => new Promise(resolve => s.close(resolve))))
  return ports
}

export async function freePort (): Promise<number> {
  return (await freePorts(1))[0]!
}

export interface Target {
  /** http://host:port of the server's HTTP listener. */
  url: URL
  httpsUrl: URL | undefined
  /** Its Prometheus endpoint (full URL, path included). */
  metricsUrl: URL
}

let target: Target | undefined
const unapplied = new Set<string>()

/** From now on startServer() returns this server instead of starting one. */
export function useTarget (t: Target): void { target = t }

/** Whether variants can set the server's configuration (false against a --url target). */
export function configurable (): boolean { return target === undefined }

/** What the variants asked of the server that a --url target could not be given. */
export function unappliedConfig (): string[] { return [...unapplied] }

function portOf (u: URL): number {
  return u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80
}

export async function startServer (env: Record<string, string>, opts: StartOptions = {}): Promise<ExperimentServer> {
  if (target !== undefined) {
    for (const [k, v] of Object.entries(env)) unapplied.add(`${k}=${v}`)
    return remote(target)
  }
  const receiver = opts.traces === true ? await startSpanReceiver() : undefined
  const tracing = receiver === undefined
    ? { OTEL_TRACES_EXPORTER: 'none' }
    : {
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_TRACES_SAMPLER: 'parentbased_always_off',
        OTEL_BSP_SCHEDULE_DELAY: '200'
      }
  const args = opts.cpus === undefined ? [MAIN] : ['-c', opts.cpus, process.execPath, MAIN]
  // A port found free can be taken before the server binds it (any outgoing connection may get it as its
  // local port, and an experiment's clients make thousands): then the server stops with EADDRINUSE, and
  // the next ports are tried. Seen once in CI (event-loop, HTTPS_PORT).
  let http = 0
  let https = 0
  let metrics = 0
  let child: ChildProcess | undefined
  for (let attempt = 1; child === undefined; attempt++) {
    [http, https, metrics] = await freePorts(3) as [number, number, number]
    const started = spawn(opts.cpus === undefined ? process.execPath : 'taskset', args, {
      env: {
        PATH: process.env.PATH, HOST: '127.0.0.1', HTTP_PORT: String(http), HTTPS_PORT: String(https), METRICS_PORT: String(metrics),
        LOG_LEVEL: 'warn', ...tracing, ...env
      },
      stdio: ['ignore', 'ignore', 'pipe']
    })
    let said = ''
    started.stderr!.on('data', (d: Buffer) => { process.stderr.write(d); if (said.length < 4096) said += d.toString() })
    for (let i = 0; ; i++) {
      if (started.exitCode !== null) {
        // Its last words can arrive after its exit is seen.
        const stderr = started.stderr!
        if (!stderr.closed) await new Promise(resolve => stderr.once('close', resolve))
        if (/EADDRINUSE/.test(said) && attempt < 3) break
        await receiver?.close()
        throw new Error('the server exited during start-up')
      }
      const ok = await fetch(`http://127.0.0.1:${metrics}/readyz`).then(r => r.ok, () => false)
      if (ok) { child = started; break }
      if (i > 300) { started.kill('SIGKILL'); await receiver?.close(); throw new Error('the server did not become ready') }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  const exited = new Promise<void>(resolve => child!.once('exit', () => resolve()))
  if (child.exitCode !== null) { await receiver?.close(); throw new Error('the server exited during start-up') }
  return {
    host: '127.0.0.1',
    http,
    https,
    metrics,
    child,
    scrape: () => scrape(new URL(`http://127.0.0.1:${metrics}/metrics`)),
    spans: receiver?.byTrace,
    async stop () {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
      await receiver?.close()
    }
  }
}

function remote (t: Target): ExperimentServer {
  return {
    host: t.url.hostname.replace(/^\[|\]$/g, ''), // connect() wants ::1, not [::1]
    http: portOf(t.url),
    https: t.httpsUrl === undefined ? NaN : portOf(t.httpsUrl),
    metrics: portOf(t.metricsUrl),
    child: undefined,
    scrape: () => scrape(t.metricsUrl),
    spans: undefined,
    stop: async () => {}
  }
}
