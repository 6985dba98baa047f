// What the kernel knows about our listening sockets, read from Linux's /proc at scrape time:
// the accept queue of every listener (connections handshaken by the kernel, waiting for accept()) and the
// namespace-wide listen overflow/drop counters.
//
// Why /proc and not a library: no maintained npm package exposes a listening socket's queue. The LISTEN row
// of /proc/net/tcp{,6} whose inode is our socket's has rx_queue = the current accept-queue length. Reading
// that file costs time proportional to every socket in the network namespace (25–57 ms for 22k rows here),
// so it is read asynchronously (the read happens on libuv's thread pool, not the event loop), only when
// Prometheus scrapes, at most once per second however often it scrapes, and only the matching row is parsed.
import { readFile, readlink } from 'node:fs/promises'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Server as NetServer } from 'node:net'
import { METRIC } from './stages.ts'

/** Node's default listen() backlog, used when the app does not pass one. */
export const NODE_DEFAULT_BACKLOG = 511
const TCP_LISTEN = '0A'

/**
 * The accept-queue length of the LISTEN socket with this inode in /proc/net/tcp{,6} text, or undefined.
 * Row: sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode …
 */
export function acceptQueueLength (procNetTcp: string, inode: string): number | undefined {
  const needle = ` ${inode} `
  for (let at = procNetTcp.indexOf(needle); at !== -1; at = procNetTcp.indexOf(needle, at + 1)) {
    const start = procNetTcp.lastIndexOf('\n', at) + 1
    const end = procNetTcp.indexOf('\n', at)
    const f = procNetTcp.slice(start, end === -1 ? undefined : end).trim().split(/\s+/)
    if (f[9] !== inode || f[3] !== TCP_LISTEN) continue // the number matched another column
    const rx = f[4]?.split(':')[1]
    return rx === undefined ? undefined : parseInt(rx, 16)
  }
  return undefined
}

/** TcpExt counters from /proc/net/netstat text (pairs of header and value lines). */
export function tcpExt (procNetNetstat: string): Map<string, number> {
  const lines = procNetNetstat.split('\n')
  const out = new Map<string, number>()
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i]!.startsWith('TcpExt:') || !lines[i + 1]!.startsWith('TcpExt:')) continue
    const names = lines[i]!.split(/\s+/).slice(1)
    const values = lines[i + 1]!.split(/\s+/).slice(1)
    names.forEach((n, j) => out.set(n, Number(values[j])))
    break
  }
  return out
}

interface Watched { listener: string, server: NetServer, backlog: number }
interface Reading { queues: Map<string, { length: number, capacity: number }>, overflows: number, drops: number }

export interface KernelMetrics {
  /** Report this listening server's accept queue (call before or after listen()). */
  watch: (server: NetServer, listener: string, backlog?: number) => void
  /** Why the kernel metrics are absent on this system, if they are. */
  unavailable: string | undefined
}

/** The socket's inode from its fd (`_handle.fd`, undocumented; test/journey/internals.test.ts guards it). */
async function inodeOf (server: NetServer): Promise<string | undefined> {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd
  if (fd === undefined || fd < 0) return undefined
  const link = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
  return /^socket:\[(\d+)\]$/.exec(link)?.[1]
}

async function somaxconn (): Promise<number> {
  const n = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8').catch(() => '')).trim())
  return Number.isInteger(n) && n > 0 ? n : Infinity
}

export function createKernelMetrics (registry: Registry<any>, platform: NodeJS.Platform = process.platform): KernelMetrics {
  const unavailable = platform === 'linux'
    ? undefined
    : `accept-queue and listen-overflow metrics need Linux's /proc (this is ${platform}): they are not exported`
  const watched: Watched[] = []
  if (unavailable !== undefined) return { watch () {}, unavailable }

  let cached: { at: number, reading: Promise<Reading> } | undefined
  async function read (): Promise<Reading> {
    const live = watched.filter(w => w.server.listening)
    const v6 = live.some(w => (w.server.address() as { family?: string } | null)?.family === 'IPv6')
    const [tcp, tcp6, netstat, max] = await Promise.all([
      readFile('/proc/net/tcp', 'utf8').catch(() => ''),
      v6 ? readFile('/proc/net/tcp6', 'utf8').catch(() => '') : '',
      readFile('/proc/net/netstat', 'utf8').catch(() => ''),
      somaxconn()
    ])
    const queues = new Map<string, { length: number, capacity: number }>()
    for (const w of live) {
      const inode = await inodeOf(w.server)
      if (inode === undefined) continue
      const length = acceptQueueLength(tcp, inode) ?? acceptQueueLength(tcp6, inode)
      if (length !== undefined) queues.set(w.listener, { length, capacity: Math.min(w.backlog, max) })
    }
    const ext = tcpExt(netstat)
    return { queues, overflows: ext.get('ListenOverflows') ?? NaN, drops: ext.get('ListenDrops') ?? NaN }
  }
  // One read serves every collector of one scrape, and scrapes closer than a second apart.
  function reading (): Promise<Reading> {
    const t = performance.now()
    if (cached === undefined || t - cached.at > 1000) cached = { at: t, reading: read() }
    return cached.reading
  }

  const registers = [registry]
  new Gauge({
    name: METRIC.acceptQueueLength,
    help: 'Connections the kernel has completed and queued, waiting for the server to accept() them (LISTEN socket rx_queue in /proc/net/tcp), read at scrape time.',
    labelNames: ['listener'] as const,
    registers,
    async collect () {
      this.reset()
      for (const [listener, q] of (await reading()).queues) this.set({ listener }, q.length)
    }
  })
  new Gauge({
    name: METRIC.acceptQueueCapacity,
    help: 'Accept-queue size: min(listen backlog, net.core.somaxconn). The kernel refuses new handshakes once the queue holds more than this.',
    labelNames: ['listener'] as const,
    registers,
    async collect () {
      this.reset()
      for (const [listener, q] of (await reading()).queues) this.set({ listener }, q.capacity)
    }
  })
  // Kernel counters: mirrored as they are (they started before this process did; rate() is what matters).
  for (const [name, help, key] of [
    [METRIC.listenOverflows, 'TcpExt ListenOverflows: times a completed handshake found an accept queue full. Namespace-wide packet counts (retransmitted SYN/ACKs count again), not connections.', 'overflows'],
    [METRIC.listenDrops, 'TcpExt ListenDrops: SYNs dropped by listening sockets for any reason (overflows included). Namespace-wide packet counts.', 'drops']
  ] as const) {
    new Counter({
      name,
      help,
      registers,
      async collect () {
        const v = (await reading())[key]
        this.reset()
        if (Number.isFinite(v)) this.inc(v)
      }
    })
  }
  return {
    watch (server, listener, backlog = NODE_DEFAULT_BACKLOG) {
      const i = watched.findIndex(w => w.listener === listener)
      if (i !== -1) watched.splice(i, 1)
      watched.push({ listener, server, backlog })
    },
    unavailable
  }
}
