// What the kernel knows about our listening sockets, read from Linux at scrape time: the accept queue of
// every listener (connections handshaken by the kernel, waiting for accept()) and the namespace-wide listen
// overflow/drop counters (/proc/net/netstat).
//
// Why not a library: no maintained npm package exposes a listening socket's queue. With the TCP_INFO addon
// (native/) one getsockopt on the listening socket gives the queue and its real size. Without it, the LISTEN
// row of /proc/net/tcp{,6} whose inode is our socket's has rx_queue = the queue length; reading that file
// costs time proportional to every socket in the network namespace (25–57 ms for 22k rows here), so it is
// read asynchronously (on libuv's thread pool, not the event loop), only when Prometheus scrapes, at most
// once per second however often it scrapes, and only the matching row is parsed.
import cluster from 'node:cluster'
import { accessSync, constants } from 'node:fs'
import { readdir, readFile, readlink } from 'node:fs/promises'
import { Counter, Gauge } from 'prom-client'
import { asPromClientRegistry, type MetricsRegistry } from './metrics-registry.ts'
import type { Server as NetServer } from 'node:net'
import { METRIC } from './stages.ts'
import { acceptQueueLength, listenInodesOnPort, socketInode, tcpExt } from './proc-net.ts'
import { readListenQueue } from './tcp-info.ts'
import { bundledInto } from './bundled.ts'
import { MAX_LISTENERS, PEAK_WINDOW_S, startKernelSampler, type KernelSampler } from './kernel-sampler.ts'

/** Node's default listen() backlog: the capacity assumed for a listener read from /proc (no addon) when the app does not say. */
const NODE_DEFAULT_BACKLOG = 511

interface Watched { listener: string, server: NetServer, backlog: number, slot: number, primaryInode?: string | undefined }
interface Reading { queues: Map<string, { length: number, capacity: number }>, overflows: number, drops: number }

export interface KernelMetrics {
  /** Report this listening server's accept queue (call before or after listen()). */
  watch: (server: NetServer, listener: string, backlog?: number) => void
  /** Why the kernel metrics, or some of them, are absent on this system, if they are. */
  unavailable: string | undefined
  close: () => void
}

/** The socket's inode from its fd (`_handle.fd`, undocumented; test/journey/internals.test.ts guards it). */
async function inodeOf (server: NetServer): Promise<string | undefined> {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd
  if (fd === undefined || fd < 0) return undefined
  const link = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
  return socketInode(link)
}

/**
 * The listening socket a cluster worker's server accepts through under round-robin scheduling (Node's
 * default off Windows, and pm2's cluster mode): the worker has no socket of its own (no fd), its
 * connections wait in the primary's accept queue. That queue is the LISTEN socket on the server's port
 * among its parent's file descriptors (the same user's, so /proc/<ppid>/fd can be read). Undefined when
 * none, or more than one, is: the parent listening on that port on several addresses would be a guess.
 */
async function primaryInode (server: NetServer): Promise<string | undefined> {
  if (!cluster.isWorker) return undefined
  const address = server.address()
  if (address === null || typeof address === 'string') return undefined
  const file = address.family === 'IPv6' ? '/proc/net/tcp6' : '/proc/net/tcp'
  const onPort = listenInodesOnPort(await readFile(file, 'utf8').catch(() => ''), address.port)
  if (onPort.length === 0) return undefined
  const dir = `/proc/${process.ppid}/fd`
  const links = await Promise.all((await readdir(dir).catch(() => [])).map(fd => readlink(`${dir}/${fd}`).catch(() => '')))
  const held = new Set(links.map(socketInode))
  const primary = onPort.filter(inode => held.has(inode))
  return primary.length === 1 ? primary[0] : undefined
}

async function somaxconn (): Promise<number> {
  const n = Number((await readFile('/proc/sys/net/core/somaxconn', 'utf8').catch(() => '')).trim())
  return Number.isInteger(n) && n > 0 ? n : Infinity
}

export interface KernelMetricsOptions {
  /** > 0: also sample the accept queues every this many ms from a worker thread (journey_accept_queue_peak). */
  sampleMs?: number
  platform?: NodeJS.Platform
}

export function createKernelMetrics (registry: MetricsRegistry, opts: KernelMetricsOptions = {}): KernelMetrics {
  const platform = opts.platform ?? process.platform
  const unavailable = platform === 'linux'
    ? undefined
    : `accept-queue and listen-overflow metrics need Linux's /proc (this is ${platform}): they are not exported`
  const watched: Watched[] = []
  if (unavailable !== undefined) return { watch () {}, unavailable, close () {} }
  let netstatProblem: string | undefined
  try {
    accessSync('/proc/net/netstat', constants.R_OK)
  } catch (err) {
    const { code } = err as NodeJS.ErrnoException
    netstatProblem = `/proc/net/netstat cannot be read (${code ?? 'error'}${code === 'ERR_ACCESS_DENIED' ? ': Node\'s permission model, without --allow-fs-read for /proc' : ''}): journey_listen_overflows_total and journey_listen_drops_total are not exported`
  }
  // Bundled, the sampler's worker would run the whole bundle (bundled.ts): not started, and said at registration.
  const sampler: KernelSampler | undefined = (opts.sampleMs ?? 0) > 0 && bundledInto === undefined ? startKernelSampler(opts.sampleMs!) : undefined

  let cached: { at: number, reading: Promise<Reading> } | undefined
  async function read (): Promise<Reading> {
    const queues = new Map<string, { length: number, capacity: number }>()
    // TCP_INFO on the listening socket when the addon is there: exact capacity, no /proc walk.
    const live = watched.filter(w => {
      if (!w.server.listening) return false
      const q = readListenQueue(w.server)
      if (q !== undefined) queues.set(w.listener, q)
      return q === undefined
    })
    const v6 = live.some(w => (w.server.address() as { family?: string } | null)?.family === 'IPv6')
    const [tcp, tcp6, netstat, max] = await Promise.all([
      live.length > 0 ? readFile('/proc/net/tcp', 'utf8').catch(() => '') : '',
      v6 ? readFile('/proc/net/tcp6', 'utf8').catch(() => '') : '',
      readFile('/proc/net/netstat', 'utf8').catch(() => ''),
      live.length > 0 ? somaxconn() : Promise.resolve(0)
    ])
    for (const w of live) {
      const inode = await inodeOf(w.server) ?? await primaryOf(w)
      if (inode === undefined) continue
      const length = acceptQueueLength(tcp, inode) ?? acceptQueueLength(tcp6, inode)
      if (length !== undefined) queues.set(w.listener, { length, capacity: Math.min(w.backlog, max) })
      else if (inode === w.primaryInode) w.primaryInode = undefined
    }
    const ext = tcpExt(netstat)
    return { queues, overflows: ext.get('ListenOverflows') ?? NaN, drops: ext.get('ListenDrops') ?? NaN }
  }
  // A round-robin worker's queue is its primary's: found once, for the scrape and the sampler alike, and
  // found again after a find that failed (a /proc/net/tcp read can miss a row while the table changes
  // under it: a storm's TIME_WAIT sockets expiring) or went stale (the primary listened anew).
  async function primaryOf (w: Watched): Promise<string | undefined> {
    if (w.primaryInode !== undefined) return w.primaryInode
    w.primaryInode = await primaryInode(w.server)
    if (w.primaryInode !== undefined && sampler !== undefined && w.slot < MAX_LISTENERS) sampler.watch(w.slot, { inode: w.primaryInode })
    return w.primaryInode
  }
  // One read serves every collector of one scrape, and scrapes closer than a second apart.
  function reading (): Promise<Reading> {
    const t = performance.now()
    if (cached === undefined || t - cached.at > 1000) cached = { at: t, reading: read() }
    return cached.reading
  }

  const registers = [asPromClientRegistry(registry)]
  new Gauge({
    name: METRIC.acceptQueueLength,
    help: 'Connections the kernel has completed and queued, waiting for the server to accept() them (Linux TCP_INFO on the listening socket with the addon, else its LISTEN row in /proc/net/tcp), read at scrape time.',
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
  // Kernel counters: mirrored as they are (they started before this process did; rate() is what matters),
  // and only where the file can be read: a counter of 0 would say "no overflows" where the truth is "not
  // known" (a sandbox without /proc/net, Node's permission model without read access to /proc).
  for (const [name, help, key] of netstatProblem !== undefined ? [] : [
    [METRIC.listenOverflows, 'TcpExt ListenOverflows: times a completed handshake found an accept queue full. Namespace-wide packet counts (retransmitted SYN/ACKs count again), not connections.', 'overflows'],
    [METRIC.listenDrops, 'TcpExt ListenDrops: SYNs dropped by listening sockets for any reason (overflows included). Namespace-wide packet counts.', 'drops']
  ] as const) {
    new Counter({
      name,
      help,
      registers,
      async collect () {
        // A read that fails now (EMFILE: out of file descriptors, as in the very connection flood that
        // overflows queues) keeps the last value: falling to 0 and back would read as a counter reset
        // followed by an increase of the namespace's whole count since boot.
        const v = (await reading())[key]
        if (!Number.isFinite(v)) return
        this.reset()
        this.inc(v)
      }
    })
  }
  if (sampler !== undefined) {
    new Gauge({
      name: METRIC.acceptQueuePeak,
      help: `Deepest accept queue seen in the last ${PEAK_WINDOW_S} s, sampled every JOURNEY_KERNEL_SAMPLE_MS from a worker thread (so it sees queues that build while the event loop is blocked).`,
      labelNames: ['listener'] as const,
      registers,
      collect () {
        this.reset()
        // Slots past MAX_LISTENERS, and slots not sampled yet, have no value rather than a made-up 0.
        for (const w of watched) {
          if (!w.server.listening || w.slot >= MAX_LISTENERS) continue
          const peak = sampler.peak(w.slot)
          if (peak >= 0) this.set({ listener: w.listener }, peak)
        }
      }
    })
  }
  let slots = 0
  return {
    watch (server, listener, backlog = NODE_DEFAULT_BACKLOG) {
      const i = watched.findIndex(w => w.listener === listener)
      const slot = i === -1 ? slots++ : watched[i]!.slot
      if (i !== -1) watched.splice(i, 1)
      const w: Watched = { listener, server, backlog, slot }
      watched.push(w)
      if (sampler === undefined || slot >= MAX_LISTENERS) return
      const start = (): void => {
        const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd
        if (fd !== undefined && fd >= 0) sampler.watch(slot, { fd })
        else void primaryOf(w)
      }
      if (server.listening) start()
      else server.once('listening', start)
    },
    unavailable: netstatProblem,
    close () { sampler?.close() }
  }
}
