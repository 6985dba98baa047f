// How the benches' CPUs idle: held in polling idle for the run (the default), or left to the machine.
//
// Why: on this kind of VM (Firecracker, cpuidle driver haltpoll with guest_halt_poll_ns=0) an idle vCPU
// halts at once. On loopback a server's send runs the receiver's TCP path and wakes wrk on the other core;
// if that core halted, waking it takes an inter-processor interrupt, a VM exit charged to the *server's*
// kernel time. How often wrk has halted depends on how slow the server is, not on what its code does:
// with halting idle a busy loop of 8–35 µs per request raised the server's kernel CPU from 7.1 to 11–17 µs
// per request (and its user CPU by 2–7 µs beyond the loop itself); with polling idle kernel CPU stayed at
// 5.9–6.7 µs whatever the loop (npm run bench:pace, which measures both; bench/NOTES.md, thirty-first
// session). A server's remote clients never cost it that. So every variant is measured with the CPUs polling when idle, as latency
// benchmarks do: a PM QoS request of 0 µs wake-up latency on /dev/cpu_dma_latency, which the kernel holds
// only while the file stays open (so it ends with the process, however it ends: nothing on the machine
// changes for good). BENCH_IDLE=halt measures with the machine's own idle states instead.
import { accessSync, closeSync, constants, openSync, readSync, writeSync } from 'node:fs'
import { endianness } from 'node:os'

const DEVICE = '/dev/cpu_dma_latency'

export type IdleMode = 'poll' | 'halt'

export interface IdleState {
  mode: IdleMode
  /** Said in the bench's output and its results' method line. */
  description: string
  /** Lets the CPUs halt again (for a bench that measures both modes in one run). */
  release: () => void
}

/** The wake-up latency the kernel currently allows idle CPUs, in µs (the PM QoS target), or undefined. */
export function cpuLatencyTargetUs (): number | undefined {
  try {
    const fd = openSync(DEVICE, 'r')
    try {
      const buf = Buffer.alloc(4)
      if (readSync(fd, buf, 0, 4, null) !== 4) return undefined
      return endianness() === 'LE' ? buf.readInt32LE(0) : buf.readInt32BE(0) // the kernel's s32, in the machine's order
    } finally { closeSync(fd) }
  } catch { return undefined }
}

/**
 * Puts the CPUs in the mode asked (BENCH_IDLE, poll by default) until release() or the process's end.
 * Polling needs write access to /dev/cpu_dma_latency (root); without it the bench says so and measures
 * with halting idle rather than stopping.
 */
export function holdIdle (mode: IdleMode = idleMode(process.env.BENCH_IDLE ?? 'poll', 'BENCH_IDLE')): IdleState {
  const halt: IdleState = { mode: 'halt', description: 'CPUs idle as the machine lets them (BENCH_IDLE=halt)', release: () => {} }
  if (mode === 'halt') {
    // Another process's request (a bench still running, tuned's latency profile) would hold them polling.
    const target = cpuLatencyTargetUs()
    return target === 0 ? { ...halt, mode: 'poll', description: `CPUs polling when idle: another process holds ${DEVICE} at 0 µs` } : halt
  }
  let fd: number
  try {
    fd = openSync(DEVICE, 'w')
    // The request is a native-endian s32: an Int32Array's bytes are in the machine's order.
    writeSync(fd, Buffer.from(new Int32Array([0]).buffer))
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err)
    return { ...halt, description: `CPUs idle as the machine lets them: could not hold them in polling idle (${DEVICE}: ${why})` }
  }
  let held = true
  return {
    mode: 'poll',
    description: `CPUs held in polling idle (${DEVICE} = 0 µs while the bench runs; BENCH_IDLE=halt to measure without)`,
    release: () => { if (held) { held = false; closeSync(fd) } }
  }
}

/** Why this process cannot hold polling idle (no write access to the device), or undefined if it can. */
export function whyNoPolling (): string | undefined {
  try { accessSync(DEVICE, constants.W_OK) } catch (err) { return `cannot write ${DEVICE} (${(err as NodeJS.ErrnoException).code})` }
  return undefined
}

/** A mode named in a variable, checked (a typo must not measure in the other mode). */
export function idleMode (value: string, variable: string): IdleMode {
  if (value !== 'poll' && value !== 'halt') throw new Error(`${variable} must be poll or halt, not ${value}`)
  return value
}
