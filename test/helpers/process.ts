// Runs src/main.ts as a real process, the way `npm start` does (or another entry, such as the built
// dist/main.js), and finds its ports in its log.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

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
