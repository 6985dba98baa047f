// Runs src/main.ts as a real process, the way `npm start` does (or another entry, such as the built
// dist/main.js), and finds its ports in its log.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startSpanReceiver, type SpanReceiver } from '../../experiments/lib/span-receiver.ts'

export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

/**
 * Network access under Node's permission model: from Node 25 on `--permission` denies it too (a server cannot
 * even listen) unless `--allow-net` is given, a flag Node 24 does not know and refuses. Tests about what the
 * model refuses the journey (addons, worker threads, /proc) add it where it exists.
 */
export const ALLOW_NET: readonly string[] = process.allowedNodeEnvironmentFlags.has('--allow-net') ? ['--allow-net'] : []

export interface Started {
  child: ChildProcess
  ports: { http: number, https: number, metrics: number }
  logs: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

const children = new Set<ChildProcess>()
/** Kills whatever a failed test left running, so the test process can end. */
export function killAll (): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
}

/** Which script to run, and Node flags before it (default: src/main.ts, none). */
export interface Entry { main?: string, nodeArgs?: string[] }

export function run (env: Record<string, string>, entry: Entry = {}): { child: ChildProcess, output: () => string, exited: Started['exited'] } {
  const child = spawn(process.execPath, [...entry.nodeArgs ?? [], entry.main ?? MAIN], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', HTTP_PORT: '0', HTTPS_PORT: '0', METRICS_PORT: '0', OTEL_TRACES_EXPORTER: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.add(child)
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('exit', (code, signal) => resolve({ code, signal })))
  return { child, output: () => out, exited }
}

export async function start (env: Record<string, string> = {}, entry: Entry = {}): Promise<Started> {
  const p = run(env, entry)
  const end = Date.now() + 15_000
  for (;;) {
    const line = p.output().split('\n').find(l => l.includes('"msg":"listening"'))
    if (line !== undefined) {
      const j = JSON.parse(line) as { http: number, https: number, metrics: number }
      return { child: p.child, ports: { http: j.http, https: j.https, metrics: j.metrics }, logs: p.output, exited: p.exited }
    }
    if (Date.now() > end || p.child.exitCode !== null) throw new Error(`server did not start:\n${p.output()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** The server exporting OTLP/JSON to a receiver in this process (closed after the test); spans leave only at the shutdown flush. */
export async function startTraced (env: Record<string, string> = {}, entry: Entry = {}): Promise<{ s: Started, receiver: SpanReceiver }> {
  const receiver = await startSpanReceiver()
  after(() => receiver.close())
  const s = await start({
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '60000',
    ...env
  }, entry)
  return { s, receiver }
}

/**
 * An OTLP/HTTP endpoint that takes every request's body and never answers (a hung collector), closed when
 * the test file ends. Returns its base URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
 */
export async function collectorThatNeverAnswers (): Promise<string> {
  const blackhole = createServer((req) => { req.resume() })
  blackhole.listen(0, '127.0.0.1')
  await once(blackhole, 'listening')
  after(() => { blackhole.closeAllConnections(); blackhole.close() })
  return `http://127.0.0.1:${(blackhole.address() as AddressInfo).port}`
}
