// Optional accept-queue sampling off the event loop, for experiments and the compose stack
// (JOURNEY_KERNEL_SAMPLE_MS > 0).
//
// Why a worker thread: a queue builds exactly when the event loop cannot run (blocked, or saturated
// accepting), so a sampler on the loop would never see it, and by scrape time the loop has drained it.
// The worker reads each listening socket's queue on its own schedule — TCP_INFO on the socket when the
// addon is built (one syscall), else the LISTEN row of /proc/net/tcp{,6} (costs time proportional to every
// socket in the namespace) — and publishes, per listener, the deepest queue seen in the last
// PEAK_WINDOW_S seconds in shared memory.
//
// A sliding window rather than "since the previous scrape": a reset-on-read peak is stolen by whichever
// client reads first (an experiment polling /metrics took every peak before Prometheus saw it). With a
// window at least as long as the scrape interval, every scraper sees every peak.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { readFileSync, readlinkSync } from 'node:fs'
import { acceptQueueLength, socketInode } from './proc-net.ts'
import { listenQueueOfFd } from './tcp-info.ts'
import { startOwnWorker } from './worker-options.ts'

export const MAX_LISTENERS = 16
/** Covers Prometheus's default 15 s scrape interval (the compose stack scrapes every 5 s). */
export const PEAK_WINDOW_S = 15

export interface KernelSampler {
  /**
   * Start sampling this listening socket in slot `slot` (call when it is listening): by its fd, or by its
   * inode when it is not this process's (a round-robin cluster worker's queue is its primary's).
   */
  watch: (slot: number, socket: { fd: number } | { inode: string }) => void
  /** Deepest queue seen in this slot in the last PEAK_WINDOW_S seconds; -1 before the first sample. */
  peak: (slot: number) => number
  close: () => void
}

/**
 * Marks the sampler's own thread in its workerData. Any other worker thread may load the plugin too — a
 * Vitest or Piscina worker, an app served from a worker — and must be left alone: no workerData of ours to
 * read, and a parentPort whose messages are its host's.
 */
interface SamplerData { requestJourneyKernelSampler: true, peaks: Int32Array, intervalMs: number }

/**
 * `entry` is the worker's module: this one (tests pass one that fails). Undefined, with a warning, when no
 * worker thread can be started: under Node's permission model without --allow-worker, `new Worker` throws,
 * and an optional gauge must not stop the app from starting.
 */
export function startKernelSampler (intervalMs: number, entry = new URL(import.meta.url)): KernelSampler | undefined {
  const peaks = new Int32Array(new SharedArrayBuffer(4 * MAX_LISTENERS)).fill(-1)
  const data: SamplerData = { requestJourneyKernelSampler: true, peaks, intervalMs }
  let worker: Worker
  try {
    worker = startOwnWorker(entry, { workerData: data, name: 'request-journey-kernel-sampler' })
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException
    const denied = code === 'ERR_ACCESS_DENIED' ? ': Node\'s permission model denies worker threads unless the process runs with --allow-worker' : ''
    process.emitWarning(`the accept-queue sampler (kernelSampleMs) could not start its worker thread (${code ?? 'Error'}: ${message.split('\n')[0]}${denied}), so journey_accept_queue_peak is not reported; serving goes on`, { code: 'REQUEST_JOURNEY_SAMPLER_FAILED' })
    return undefined
  }
  worker.unref()
  // A worker that dies must not take the server with it (an 'error' event nobody listens to is thrown in
  // this thread), nor leave its last peaks behind as if they were current: they go back to "no sample",
  // which the gauge does not report.
  worker.on('error', err => {
    peaks.fill(-1)
    process.emitWarning(`the accept-queue sampler stopped (${err.message}), so journey_accept_queue_peak is no longer reported`, { code: 'REQUEST_JOURNEY_SAMPLER_FAILED' })
  })
  return {
    watch (slot, socket) { worker.postMessage({ slot, ...socket }) },
    peak (slot) { return Atomics.load(peaks, slot) },
    close () { void worker.terminate() }
  }
}

/**
 * Per-second maxima over a sliding window: `record` a sample taken during second `t`, `max` of the
 * seconds (t - size, t]. A ring indexed by second, each entry remembering which second it holds.
 */
export class WindowMax {
  private readonly size: number
  private readonly seconds: Float64Array
  private readonly maxima: Int32Array
  constructor (size: number) {
    this.size = size
    this.seconds = new Float64Array(size).fill(-Infinity)
    this.maxima = new Int32Array(size)
  }

  record (t: number, value: number): void {
    const i = t % this.size
    if (this.seconds[i] !== t) { this.seconds[i] = t; this.maxima[i] = value } else if (value > this.maxima[i]!) this.maxima[i] = value
  }

  /** -1 when nothing was recorded in the window. */
  max (t: number): number {
    let m = -1
    for (let i = 0; i < this.size; i++) if (this.seconds[i]! > t - this.size && this.maxima[i]! > m) m = this.maxima[i]!
    return m
  }
}

/**
 * The share of a core that reading /proc/net/tcp{,6} may take. TCP_INFO costs one syscall; a /proc read
 * costs time for every socket in the namespace — a connection storm leaves thousands of TIME_WAIT rows,
 * milliseconds a read — and two cluster workers sampling their primary's queue that way every 5 ms took
 * most of a core from the servers they measured (the accept experiment's round-robin served 520–970
 * connections a second against 2,191).
 */
export const PROC_DUTY = 0.02

/**
 * When /proc may be read again after a read that ended at `ended` (performance.now() ms) and cost `costMs`
 * of this thread's CPU time: reading takes at most PROC_DUTY of a core.
 */
export function nextProcRead (ended: number, costMs: number): number {
  return ended + costMs * (1 / PROC_DUTY - 1)
}

/**
 * This thread's CPU time in ms — what a read costs the servers. Not wall time: a read preempted on a busy
 * host (exactly when queues build) would count the time other threads ran, and one 20 ms time slice kept
 * the sampler off /proc for a second, missing the queue it is there to see. Wall time where Node lacks
 * process.threadCpuUsage (added in 23.9 and a later 22.x).
 */
export const threadCpuMs: () => number = typeof process.threadCpuUsage === 'function'
  ? () => { const { user, system } = process.threadCpuUsage(); return (user + system) / 1000 }
  : () => performance.now()

// The worker: this same module, run in a thread started by startKernelSampler (and no other thread).
// No top-level await anywhere in the plugin's modules: it would make the package's module graph
// asynchronous, and a CommonJS app's require() of it throw ERR_REQUIRE_ASYNC_MODULE.
const samplerData = isMainThread ? undefined : workerData as Partial<SamplerData> | null | undefined
if (samplerData?.requestJourneyKernelSampler === true && parentPort !== null) {
  const { peaks, intervalMs } = samplerData as SamplerData
  // Per slot: its fd, the inode for the /proc fallback, and the deepest queue of each of the last seconds.
  const slots = new Map<number, { fd: number, inode: string | undefined, window: WindowMax }>()
  parentPort.on('message', ({ slot, fd = -1, inode }: { slot: number, fd?: number, inode?: string }) => {
    // Same process, so the listening socket's fd is valid here too — unless it was closed meanwhile.
    let link: string | undefined
    try { link = fd < 0 ? undefined : readlinkSync(`/proc/self/fd/${fd}`) } catch { link = undefined }
    inode ??= link === undefined ? undefined : socketInode(link)
    slots.set(slot, { fd, inode, window: new WindowMax(PEAK_WINDOW_S) })
  })
  let tcp: string | undefined
  let tcp6: string | undefined
  // A system without /proc/net/tcp6 (IPv6 off), or without /proc/net at all, reads as "not found".
  const read = (path: string): string => { try { return readFileSync(path, 'utf8') } catch { return '' } }
  // This thread's CPU time when the tick first read /proc (a syscall: only on ticks that read it).
  let cpuAtRead: number | undefined
  const fromProc = (inode: string | undefined): number | undefined => {
    if (inode === undefined) return undefined
    cpuAtRead ??= threadCpuMs()
    return acceptQueueLength(tcp ??= read('/proc/net/tcp'), inode) ?? acceptQueueLength(tcp6 ??= read('/proc/net/tcp6'), inode)
  }
  let procAfter = 0
  setInterval(() => {
    tcp = tcp6 = cpuAtRead = undefined
    const started = performance.now()
    const second = Math.floor(started / 1000)
    const procAllowed = started >= procAfter
    for (const [slot, s] of slots) {
      const n = listenQueueOfFd(s.fd)?.length ?? (procAllowed ? fromProc(s.inode) : undefined)
      if (n === undefined) continue
      s.window.record(second, n)
      Atomics.store(peaks, slot, s.window.max(second))
    }
    if (cpuAtRead !== undefined) procAfter = nextProcRead(performance.now(), threadCpuMs() - cpuAtRead)
  }, intervalMs)
}
