// The kernel's record of one TCP connection (getsockopt TCP_INFO), through the small addon in native/.
// Read once per accepted connection: how long the connection had waited in the kernel before the
// application took it, and whether request bytes were already waiting. Linux reports those ages in
// jiffies converted to ms, so their resolution is 1000/HZ ms (4 ms here with HZ=250): coarse, but the
// only view of the accept queue from inside the process. Without the addon nothing is invented: the
// fields stay undefined and spans say `journey.accept.queue_wait_measured=false`.
import { createRequire } from 'node:module'
import type { Server, Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { bundledInto } from './bundled.ts'

interface Addon {
  tcpInfo: (fd: number, out: Float64Array) => boolean
  /** Bytes the kernel holds for the socket unacknowledged by the peer, sent or queued (SIOCOUTQ); -1: cannot say. */
  sendQueue: (fd: number) => number
  /** Bytes of struct tcp_info this kernel fills (negative errno: no socket to ask). */
  tcpInfoProbe: () => number
  TCP_INFO_NEEDED: number
}

const STALE = 'an addon built from older sources than this plugin (npm ci, or npm run install, rebuilds it)'
let addon: Addon | undefined
let unavailable: string | undefined
let loadError: string | undefined
let short: string | undefined
if (bundledInto !== undefined) {
  unavailable = `the journey is bundled into ${bundledInto}, so its TCP_INFO addon is not beside it: accept-queue wait is not measured`
} else {
  // node-gyp-build picks the addon built here (native/build/Release: this checkout's npm ci, or a package
  // install that compiled it) or else the package's prebuilt one for this platform, arch and libc
  // (native/prebuilds/, put there by deploy/pack-journey.ts), so most installs need no compiler and no
  // install script — which npm 12, pnpm and Yarn 4 run only once approved.
  const require = createRequire(import.meta.url)
  try {
    addon = (require('node-gyp-build') as (dir: string) => Addon)(fileURLToPath(new URL('../../native', import.meta.url)))
  } catch (err) {
    // node-gyp-build's "No native build was found for platform=… libc=…" has no code; its first line is
    // what to show. With a code, the loader's first line says which file and why.
    // Node's permission model names the path it refused (node-gyp-build first reads /etc/alpine-release).
    const { code, message, resource } = err as NodeJS.ErrnoException & { resource?: string }
    const first = message.split('\n')[0]!
    loadError = code === undefined
      ? first.replace(/^No native build was found for /, 'no build and no prebuilt addon for ')
      : `${code}: ${first}${typeof resource === 'string' && resource !== '' ? ` (${resource})` : ''}`
    unavailable = process.platform !== 'linux'
      ? `accept-queue wait needs Linux TCP_INFO (this is ${process.platform}): not measured`
      : `the TCP_INFO addon ${addonProblem(loadError)} (${loadError}${code === undefined ? '; npm ci builds it with node-gyp' : ''}): accept-queue wait is not measured`
  }
  // An addon without the probe or the send queue was built from older sources (a checkout pulled without
  // npm ci since): it would not guard against a short struct either, so it is not used.
  if (addon !== undefined && (typeof addon.tcpInfoProbe !== 'function' || typeof addon.sendQueue !== 'function')) {
    loadError = STALE
    unavailable = `the TCP_INFO addon ${addonProblem(loadError)} (${loadError}): accept-queue wait is not measured`
    addon = undefined
  }
  // A kernel that answers TCP_INFO with less of the struct than the fields read (qemu-user's emulation,
  // which runs arm64 images on x64 hosts, fills 4 bytes): the addon would report nothing for every
  // connection, so say so once here rather than leave each span to say "not measured" with no reason.
  const filled = addon === undefined ? -1 : addon.tcpInfoProbe() // negative: unknown (no socket to ask)
  if (addon !== undefined && filled >= 0 && filled < addon.TCP_INFO_NEEDED) {
    short = `this kernel fills ${filled} bytes of TCP_INFO where the journey reads ${addon.TCP_INFO_NEEDED} (an emulated kernel, such as qemu-user's)`
    unavailable = `${short}: accept-queue wait is not measured`
    addon = undefined
  }
}

/**
 * What went wrong, from how loading failed: a file that is there but does not load here (another arch or
 * libc, damaged) is not "not built", and building is no answer to it; nor to a missing node-gyp-build (the
 * plugin's folder copied into an app without its dependencies).
 */
export function addonProblem (loadError: string): string {
  if (addonDenied(loadError)) return 'is not allowed to load: Node\'s permission model (--permission) denies it'
  if (loadError.startsWith('ERR_DLOPEN_FAILED')) return 'does not load here'
  if (loadError === STALE) return 'is out of date'
  if (loadError.startsWith('MODULE_NOT_FOUND') && loadError.includes("'node-gyp-build'")) return 'is not looked for: node-gyp-build, which finds it, is not installed beside the plugin (npm install node-gyp-build)'
  return 'is not built'
}

/** Loading failed because the process runs under Node's permission model, not for want of a build. */
export function addonDenied (loadError: string): boolean {
  return loadError.startsWith('ERR_DLOPEN_DISABLED') || loadError.startsWith('ERR_ACCESS_DENIED')
}

/** Why TCP_INFO measurements are absent, if they are. */
export const tcpInfoUnavailable: string | undefined = unavailable
/** How loading the addon failed (an error code), if it did. */
export const tcpInfoLoadError: string | undefined = loadError
/** Why a loaded addon cannot measure here (the kernel's TCP_INFO is too short), if it cannot. */
export const tcpInfoShort: string | undefined = short

export interface KernelView {
  /** ms since the last ACK-bearing packet from the client: for a connection that has sent nothing yet, since the handshake completed. */
  lastAckRecvMs: number
  /** ms since the last data packet arrived; meaningful when bytesReceived > 0. */
  lastDataRecvMs: number
  /** Smoothed round-trip time, µs. */
  rttUs: number
  /** Payload bytes the kernel has received on this connection (-1: kernel too old to say). */
  bytesReceived: number
}

const out = new Float64Array(7)
const TCP_LISTEN = 10

/** The socket's file descriptor, -1 when it has none (closed, or not backed by one: a JS stream). */
function socketFd (socket: Socket): number {
  return (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1
}

/** socketFd, for the addon to ask the kernel about later; -1 without the addon, where nothing would ask. */
export function addonFd (socket: Socket): number {
  return addon === undefined ? -1 : socketFd(socket)
}

/** The socket's TCP_INFO, or undefined (no addon, no fd, not TCP). Costs one syscall (≈1.5 µs). */
export function readTcpInfo (socket: Socket): KernelView | undefined {
  return readTcpInfoOf(socketFd(socket))
}

/** readTcpInfo for a descriptor already known. */
export function readTcpInfoOf (fd: number): KernelView | undefined {
  if (addon === undefined || fd < 0 || !addon.tcpInfo(fd, out)) return undefined
  return { lastDataRecvMs: out[0]!, lastAckRecvMs: out[1]!, rttUs: out[2]!, bytesReceived: out[3]! }
}

/**
 * Bytes the kernel holds for an open TCP socket that the peer has not acknowledged, whether sent and in
 * flight or still queued behind its receive window (Linux SIOCOUTQ). NaN without the addon or an answer.
 * One syscall; only ever asked for requests that are traced.
 */
export function readSendQueue (fd: number): number {
  if (addon === undefined || fd < 0) return NaN
  const n = addon.sendQueue(fd)
  return n < 0 ? NaN : n
}

/**
 * A listening socket's accept queue from TCP_INFO: for LISTEN sockets Linux reports the connections
 * waiting for accept() and the queue's size (the backlog as the kernel capped it). One syscall, instead
 * of reading /proc/net/tcp, which grows with every socket in the namespace.
 */
export function readListenQueue (server: Server): { length: number, capacity: number } | undefined {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd
  return fd === undefined ? undefined : listenQueueOfFd(fd)
}

/** readListenQueue by file descriptor (the kernel sampler's worker thread has the fd, not the server). */
export function listenQueueOfFd (fd: number): { length: number, capacity: number } | undefined {
  if (addon === undefined || fd < 0 || !addon.tcpInfo(fd, out) || out[6] !== TCP_LISTEN) return undefined
  return { length: out[4]!, capacity: out[5]! }
}
