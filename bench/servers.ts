// The bench's servers and what is read from them, shared by npm run bench (run.ts), bench:steady (steady.ts)
// and bench:ab (ab.ts): the programs the benches need, where each server listens, how it is started and
// pinned, its CPU time and peak memory, the routes wrk loads, and the local OTLP/HTTP receiver.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { accessSync, closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as pause } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import type { VariantName } from './variants.ts'
import { h2load } from './h2load.ts'
import { wrk, type WrkResult } from './wrk.ts'
import { tickStateOf, type TickState } from './tick-state.ts'
import { compiledServer, NO_STRIPPER } from './compile.ts'

export const root = fileURLToPath(new URL('..', import.meta.url))

/** The programs the benches run, and the Debian package each comes from. */
const TOOLS = { wrk: 'wrk', h2load: 'nghttp2-client', taskset: 'util-linux', curl: 'curl' } as const

const onPath = (program: string): boolean => (process.env.PATH ?? '').split(delimiter).some(dir => {
  try {
    accessSync(join(dir, program), constants.X_OK)
    return true
  } catch {
    return false
  }
})

/**
 * Stops a bench before it starts anything when a program it runs is missing, saying which and where it
 * comes from: otherwise a missing wrk surfaced as taskset's "failed to execute wrk", a minute of server
 * start-ups into the run.
 */
export function requireTools (programs: ReadonlyArray<keyof typeof TOOLS> = ['wrk', 'taskset', 'curl']): void {
  const missing = programs.filter(p => !onPath(p))
  if (missing.length === 0) return
  console.error(`this bench runs ${missing.join(', ')}, not found on PATH: apt-get install ${[...new Set(missing.map(p => TOOLS[p]))].join(' ')}`)
  process.exit(1)
}

/** The machine line every result file carries: cores, CPU model, Node. */
export const machine = (): string => `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}`

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ: 100 on every Linux this runs on). */
export const CLK_TCK = 100

/** Server slot i listens on 3100 + i (HTTP) and 3543 + i (HTTPS). */
const portsOf = (slot: number): { http: number, https: number } => ({ http: 3100 + slot, https: 3543 + slot })

/** CPU time of a process and all its threads, in clock ticks: user space and kernel (utime, stime: fields 14 and 15 of stat). */
export function cpuTimes (pid: number): { user: number, kernel: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return { user: Number(fields[11]), kernel: Number(fields[12]) }
}

/**
 * The host's steal so far, every CPU of this VM together, in clock ticks (/proc/stat's `steal`): time the
 * hypervisor ran something else while this VM wanted its CPUs. This kernel keeps it out of processes' own CPU
 * times (CONFIG_PARAVIRT_TIME_ACCOUNTING), so it does not make a server look dearer; it shows how busy the host was.
 */
export function hostStealTicks (): number {
  return Number(readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/)[8] ?? 0)
}

export function cpuTicks (pid: number): number {
  const { user, kernel } = cpuTimes(pid)
  return user + kernel
}

export function peakRssMb (pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

export interface BenchRoute {
  name: string
  key: 'get' | 'post' | 'https' | 'get-close' | 'https-close' | 'fail' | 'h2' | 'h2-post'
  url: (slot: number) => string
  /** wrk's Lua script (the POST body, a header), a file in the bench's folder; undefined on HTTP/2. */
  lua: string | undefined
  /** Loads `url` for `seconds` over `connections` connections: wrk with `lua`, or on HTTP/2 h2load. */
  load: (url: string, seconds: number, connections: number) => Promise<WrkResult>
  /** Served by bench/server.ts's HTTP/2 app (StartOptions.http2), loaded by h2load: only bench:ab takes it. */
  http2?: true
  /** curl's arguments for the same request (bench:run counts one's spans with curl). */
  curl: string[]
  /** Every answer is a 500, on purpose: what a storm of failing requests costs (bench/server.ts's /fail). */
  failing?: true
}

/** The body every POST /echo of the benches sends (1 KiB of JSON). */
export const POST_BODY = JSON.stringify({ message: 'x'.repeat(1000) })

/** The routes npm run bench measures every variant on unless told otherwise (its README table's). */
export const DEFAULT_ROUTES: ReadonlyArray<BenchRoute['key']> = ['get', 'post', 'https']

/**
 * The routes the benches know; writes the Lua scripts (and the POST body) into `dir`. Besides the table's
 * three, over keep-alive connections: `get-close` and `https-close`, a new connection for every request
 * (`Connection: close`; over HTTPS a full handshake each, as wrk resumes no session), for what the
 * journey's per-connection work costs (the connection's record, TCP_INFO at accept, its spans), which
 * keep-alive load hardly meets. And `fail`, whose handler throws: every answer a 500, as in a storm of
 * failures (a database down), for what the journey's error rule costs (bench:ab with JOURNEY_KEEP_* in A_ENV).
 * And `h2`, `h2-post`: the table's GET and POST over HTTP/2 (TLS, h2load's 10 streams per connection), on
 * bench/server.ts's HTTP/2 app, for bench:ab (A_VARIANT=bare against a variant).
 */
export function benchRoutes (dir: string): BenchRoute[] {
  writeFileSync(join(dir, 'post.lua'), `wrk.method = "POST"\nwrk.body = '${POST_BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`)
  writeFileSync(join(dir, 'post.json'), POST_BODY)
  writeFileSync(join(dir, 'close.lua'), 'wrk.headers["Connection"] = "close"\n')
  const post = ['-H', 'content-type: application/json', '--data-binary', `@${join(dir, 'post.json')}`]
  const close = ['-H', 'connection: close']
  const byWrk = (lua: string | undefined) => ({ lua, load: (url: string, seconds: number, connections: number) => wrk(url, seconds, lua, connections) })
  const byH2load = (args: string[]) => ({ lua: undefined, http2: true as const, load: (url: string, seconds: number, connections: number) => h2load(url, seconds, args, connections) })
  return [
    { name: 'GET /', key: 'get', url: slot => `http://127.0.0.1:${portsOf(slot).http}/`, ...byWrk(undefined), curl: [] },
    { name: 'POST /echo 1 KiB', key: 'post', url: slot => `http://127.0.0.1:${portsOf(slot).http}/echo`, ...byWrk(join(dir, 'post.lua')), curl: post },
    { name: 'GET / over HTTPS', key: 'https', url: slot => `https://127.0.0.1:${portsOf(slot).https}/`, ...byWrk(undefined), curl: [] },
    { name: 'GET /, new connection each', key: 'get-close', url: slot => `http://127.0.0.1:${portsOf(slot).http}/`, ...byWrk(join(dir, 'close.lua')), curl: close },
    { name: 'GET / over HTTPS, new connection each', key: 'https-close', url: slot => `https://127.0.0.1:${portsOf(slot).https}/`, ...byWrk(join(dir, 'close.lua')), curl: close },
    { name: 'GET /fail, every answer a 500', key: 'fail', url: slot => `http://127.0.0.1:${portsOf(slot).http}/fail`, ...byWrk(undefined), curl: [], failing: true },
    { name: 'GET / over HTTP/2', key: 'h2', url: slot => `https://127.0.0.1:${portsOf(slot).https}/`, ...byH2load([]), curl: ['--http2'] },
    { name: 'POST /echo 1 KiB over HTTP/2', key: 'h2-post', url: slot => `https://127.0.0.1:${portsOf(slot).https}/echo`, ...byH2load(['-d', join(dir, 'post.json'), '-H', 'content-type: application/json']), curl: ['--http2', ...post] }
  ]
}

// Node flags for every bench server, variant and twin alike (npm run bench, bench:steady, bench:ab). By
// default V8's memory reducer is off: it runs full collections in a process whose allocation rate drops, as
// every server of npm run bench does while the other pairs are measured. Those collections were what left
// an idle server ≈ 3 µs per request slower for good (the slow nextTick, now prevented: src/tick-shape.ts);
// with the fix, one full run with them read the same medians and a higher peak RSS at 100 % (bench/NOTES.md,
// eighteenth session), so the method stays as it was. A server under steady load never triggers them.
export const NODE_FLAGS: readonly string[] = (process.env.BENCH_NODE_FLAGS ?? '--no-memory-reducer').split(' ').filter(Boolean)

export interface StartOptions {
  /** Node flags, variant and twin alike. */
  flags: readonly string[]
  /** The checkout whose bench/server.ts runs (bench:ab compares two); this one by default. */
  checkout?: string
  /** Variables added to the server's environment (bench:ab). */
  env?: Readonly<Record<string, string>>
  /** The server's stdout goes to this file (at the end of its life it prints there whether V8 left it slow). */
  stdout: string
  /** The started process is added here at once, so that whoever started it can kill it if starting fails. */
  children: ChildProcess[]
  /** Serve HTTP/2 over TLS on the HTTPS port, and nothing else (bench/server.ts's BENCH_HTTP2). */
  http2?: boolean
}

// The servers' certificate is self-signed; `reset` closes each connection after its answer, as curl's did.
const insecure = new Agent({ connect: { rejectUnauthorized: false } })
/**
 * Whether the server answers a request over HTTPS (its last listener to open) with a 2xx. Asked from this
 * process rather than by spawning curl ten times a second for each starting server: those processes took
 * CPU the servers needed (a round's 18 servers started at once answered after 16 s polled by curl, 13 s so).
 */
const answers = (port: number): Promise<boolean> =>
  request(`https://127.0.0.1:${port}/`, { dispatcher: insecure, reset: true, headersTimeout: 2000, bodyTimeout: 2000 })
    .then(async res => { await res.body.dump(); return res.statusCode >= 200 && res.statusCode < 300 })
    .catch(() => false)

/**
 * Starts bench/server.ts, compiled to JavaScript (compile.ts), as variant `v` in `slot` and waits until it
 * answers over HTTPS; then pins it, every thread (-a), to CPU 0 (threads made later inherit that). It starts
 * unpinned: eighteen servers started one at a time on one core took ≈ 50 s.
 */
export async function startServer (v: VariantName, slot: number, opts: StartOptions): Promise<ChildProcess> {
  const { http, https } = portsOf(slot)
  const fd = openSync(opts.stdout, 'w')
  const entry = compiledServer(opts.checkout ?? root)
  // --allow-natives-syntax lets a server print its nextTick feedback (tick-state.ts); it changes nothing else.
  const child = spawn(process.execPath, [...opts.flags, NO_STRIPPER, '--allow-natives-syntax', entry], {
    // Every exporting variant flushes a partial batch after 200 ms (not the default 5 s), so spans of one
    // window reach the receiver before the next window starts and are counted for the variant that made them
    // (bench:latency, which counts no spans, asks for the default back: opts.env).
    env: { PATH: process.env.PATH, OTEL_BSP_SCHEDULE_DELAY: '200', ...opts.env, BENCH_VARIANT: v, HTTP_PORT: String(http), HTTPS_PORT: String(https), BENCH_HTTP2: String(opts.http2 === true) },
    stdio: ['ignore', fd, 'inherit']
  })
  closeSync(fd) // the child has its own copy
  opts.children.push(child)
  for (let i = 0; i < 600; i++) {
    await pause(100)
    if (child.exitCode !== null) break
    if (await answers(https)) {
      execFileSync('taskset', ['-a', '-p', '-c', '0', String(child.pid)], { stdio: 'ignore' })
      return child
    }
  }
  throw new Error(`${v} did not start`)
}

/**
 * The list a bench adds every process it starts to: each is killed however the bench ends — its last line,
 * an error, Ctrl-C —, so no server is left holding a port or CPU 0 for the next run.
 */
export function childrenKilledAtExit (): ChildProcess[] {
  const children: ChildProcess[] = []
  process.on('exit', () => { for (const c of children) c.kill('SIGKILL') })
  process.on('SIGINT', () => process.exit(130))
  return children
}

export interface Received { bytes: number, spans: number, undecodable: number }

/**
 * A local OTLP/HTTP receiver on the load generator's core, answering 200 to everything; it counts bytes and
 * spans, so a report can say how much each sampled variant exported and whether it kept up (receiver.ts).
 */
export function startReceiver (children: ChildProcess[]): { received: () => Promise<Received> } {
  const receiver = spawn('taskset', ['-c', '1', process.execPath, join(root, 'bench', 'receiver.ts')], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  children.push(receiver)
  return { received: () => new Promise(resolve => { receiver.once('message', m => resolve(m as Received)); receiver.send('?') }) }
}

/** Ends a child and waits for its exit; one that already died (its error is on stderr) has no 'exit' left to wait for. */
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill()
  await exited
}

/**
 * Ends servers, each first asked whether V8 left it in the slow nextTick state (tick-state.ts); `stdoutOf`
 * names the file each one's stdout went to. An inline cache never goes back from megamorphic, so a server
 * normal now was normal all its life.
 */
export async function stopServers (procs: readonly ChildProcess[], stdoutOf: (c: ChildProcess) => string): Promise<Map<ChildProcess, TickState>> {
  for (const c of procs) { c.kill('SIGCONT'); c.kill('SIGWINCH') }
  await pause(300)
  // A clean exit, so that what V8 printed through C stdio reaches the file.
  await Promise.all(procs.map(c => new Promise<void>(resolve => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve()
    const force = setTimeout(() => c.kill('SIGKILL'), 5000)
    c.once('exit', () => { clearTimeout(force); resolve() })
    c.kill('SIGTERM')
  })))
  return new Map(procs.map(c => [c, tickStateOf(readFileSync(stdoutOf(c), 'utf8'))]))
}
