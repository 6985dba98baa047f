// Optional accept-queue sampling off the event loop, for experiments (JOURNEY_KERNEL_SAMPLE_MS > 0).
//
// Why a worker thread: a queue builds exactly when the event loop cannot run (blocked, or saturated
// accepting), so a sampler on the loop would never see it, and by scrape time the loop has drained it.
// The worker reads /proc/net/tcp{,6} on its own schedule and keeps, per listener, the deepest queue seen
// since the last scrape in shared memory; the scrape takes that peak and resets it. Reading the file costs
// time proportional to every socket in the namespace, so this stays off unless asked for.
import { isMainThread, parentPort, Worker } from 'node:worker_threads'
import { readFileSync, readlinkSync } from 'node:fs'
import { acceptQueueLength } from './proc-net.ts'

export const MAX_LISTENERS = 16

export interface KernelSampler {
  /** Start sampling this listening socket in slot `slot` (call when it is listening). */
  watch: (slot: number, fd: number) => void
  /** Deepest queue seen in this slot since the last call, then reset. */
  takePeak: (slot: number) => number
  close: () => void
}

export function startKernelSampler (intervalMs: number): KernelSampler {
  // [0, MAX): deepest queue per slot since the last take; [MAX, 2·MAX): how many takes so far per slot.
  const peaks = new Int32Array(new SharedArrayBuffer(4 * 2 * MAX_LISTENERS))
  const worker = new Worker(new URL(import.meta.url), { workerData: { peaks, intervalMs } })
  worker.unref()
  return {
    watch (slot, fd) { worker.postMessage({ slot, fd }) },
    takePeak (slot) {
      Atomics.add(peaks, MAX_LISTENERS + slot, 1)
      return Atomics.exchange(peaks, slot, 0)
    },
    close () { void worker.terminate() }
  }
}

// The worker: this same module, run in a thread.
if (!isMainThread && parentPort !== null) {
  const { workerData } = await import('node:worker_threads')
  const { peaks, intervalMs } = workerData as { peaks: Int32Array, intervalMs: number }
  const inodes = new Map<number, string>()
  parentPort.on('message', ({ slot, fd }: { slot: number, fd: number }) => {
    // Same process, so the listening socket's fd resolves here too.
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1]
    if (inode !== undefined) inodes.set(slot, inode)
  })
  setInterval(() => {
    if (inodes.size === 0) return
    // A sample read before a take must not land after it (it would report a drained queue as still deep).
    const takes = [...inodes.keys()].map(slot => Atomics.load(peaks, MAX_LISTENERS + slot))
    const tcp = readFileSync('/proc/net/tcp', 'utf8')
    let tcp6: string | undefined
    let i = 0
    for (const [slot, inode] of inodes) {
      const taken = takes[i++]!
      let n = acceptQueueLength(tcp, inode)
      if (n === undefined) n = acceptQueueLength(tcp6 ??= readFileSync('/proc/net/tcp6', 'utf8'), inode)
      if (n === undefined) continue
      for (;;) {
        const old = Atomics.load(peaks, slot)
        if (n <= old || Atomics.load(peaks, MAX_LISTENERS + slot) !== taken) break
        if (Atomics.compareExchange(peaks, slot, old, n) === old) break
      }
    }
  }, intervalMs)
}
