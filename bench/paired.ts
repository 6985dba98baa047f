// The bench's one measurement: a variant and its bare twin loaded at the same time, both on CPU 0, one wrk
// (on HTTP/2 routes h2load) each (25 connections) on CPU 1, and the ratio of their requests per server CPU-second.
//
// Why at the same time: this machine's speed drifts by tens of percent within seconds (other tenants), and
// windows taken one after the other — even bare, A, bare with the ratio per triple — moved single ratios by
// ±0.15; two servers sharing the same seconds see the same drift. Each gets about half the core, so latency
// and requests/s come from a variant's own solo window instead (run.ts).
import type { ChildProcess } from 'node:child_process'
import { cpus } from 'node:os'
import { CLK_TCK, cpuTimes, hostStealTicks, type BenchRoute } from './servers.ts'

/** Both servers' CPU per request split into user space and kernel (µs), and the ratio of their requests per CPU-second. */
export interface Paired {
  ratio: number
  /** CPU-seconds both servers got per second of the window, and the smaller one's alone. */
  cpuShare: number
  minShare: number
  /** Non-2xx responses and socket errors, both servers. */
  errors: number
  /** Of those, the non-2xx responses; and every response, both servers (a failing route's are all non-2xx). */
  non2xx: number
  requests: number
  userUs: number
  kernelUs: number
  twinUserUs: number
  twinKernelUs: number
  /** How often each side's wrk went to sleep per response (wrk.ts): how much of a kernel share is pace. */
  sleepsPerResponse: number
  twinSleepsPerResponse: number
  /** The host's steal over the window, as a share of both CPUs' time (servers.ts hostStealTicks). */
  hostSteal: number
}

export async function paired (twin: ChildProcess, twinUrl: string, child: ChildProcess, url: string, load: BenchRoute['load'], seconds: number): Promise<Paired> {
  const b0 = cpuTimes(twin.pid!)
  const v0 = cpuTimes(child.pid!)
  const s0 = hostStealTicks()
  const w0 = performance.now()
  const [rb, rv] = await Promise.all([load(twinUrl, seconds, 25), load(url, seconds, 25)])
  const b1 = cpuTimes(twin.pid!)
  const v1 = cpuTimes(child.pid!)
  const wall = (performance.now() - w0) / 1000
  const stolen = (hostStealTicks() - s0) / CLK_TCK
  const bareCpu = (b1.user + b1.kernel - b0.user - b0.kernel) / CLK_TCK
  const varCpu = (v1.user + v1.kernel - v0.user - v0.kernel) / CLK_TCK
  const usPerRequest = (ticks: number, requests: number): number => ticks / CLK_TCK * 1e6 / requests
  return {
    ratio: (rv.requests / varCpu) / (rb.requests / bareCpu),
    cpuShare: (bareCpu + varCpu) / wall,
    minShare: Math.min(bareCpu, varCpu) / wall,
    errors: rb.errors + rv.errors,
    non2xx: rb.non2xx + rv.non2xx,
    requests: rb.requests + rv.requests,
    userUs: usPerRequest(v1.user - v0.user, rv.requests),
    kernelUs: usPerRequest(v1.kernel - v0.kernel, rv.requests),
    twinUserUs: usPerRequest(b1.user - b0.user, rb.requests),
    twinKernelUs: usPerRequest(b1.kernel - b0.kernel, rb.requests),
    sleepsPerResponse: rv.sleepsPerResponse,
    twinSleepsPerResponse: rb.sleepsPerResponse,
    hostSteal: stolen / (wall * cpus().length)
  }
}

/**
 * Whether a paired window measured serving. Windows where the servers did not get 90 % of the core (or one
 * of them got under 30 %) say more about the machine than the variant, and windows with errors measured
 * something else than serving (a server answering 500s fast would look cheap): dropped, and counted.
 */
export function pairedKept (p: Pick<Paired, 'cpuShare' | 'minShare' | 'errors'>): boolean {
  return p.cpuShare >= 0.9 && p.minShare >= 0.3 && p.errors === 0
}

/** The same on a route that fails on purpose (servers.ts, `failing`: a storm): serving is a 500 for every request. */
export function failingPairedKept (p: Pick<Paired, 'cpuShare' | 'minShare' | 'errors' | 'non2xx' | 'requests'>): boolean {
  return pairedKept({ ...p, errors: p.errors - p.non2xx }) && p.non2xx === p.requests
}
