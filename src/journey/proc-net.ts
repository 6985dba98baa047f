// Pure parsers for Linux's /proc/net files: shared by the scrape-time reader (kernel.ts) and the off-loop
// sampler (kernel-sampler.ts), and tested against the real kernel in test/journey/kernel.test.ts.

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

/**
 * Inodes of the LISTEN sockets bound to this port in /proc/net/tcp{,6} text, whatever their address (the
 * namespace's: several processes, or one on several addresses, may listen on one port). Only the rows the
 * port's text appears in are split: the file can hold tens of thousands of rows, and this runs on the loop.
 */
export function listenInodesOnPort (procNetTcp: string, port: number): string[] {
  const needle = `:${port.toString(16).toUpperCase().padStart(4, '0')} `
  const out: string[] = []
  for (let at = procNetTcp.indexOf(needle); at !== -1; at = procNetTcp.indexOf(needle, at + 1)) {
    const start = procNetTcp.lastIndexOf('\n', at) + 1
    const end = procNetTcp.indexOf('\n', at)
    const f = procNetTcp.slice(start, end === -1 ? undefined : end).trim().split(/\s+/)
    // The port may be the remote one (a connection's), or both: take each LISTEN row once, by its local port.
    if (f[3] === TCP_LISTEN && `${f[1]} `.endsWith(needle) && f[9] !== undefined && !out.includes(f[9])) out.push(f[9])
    if (end === -1) break
    at = end
  }
  return out
}

/** The inode of a socket from its /proc/<pid>/fd link (`socket:[12345]`), or undefined for any other file. */
export function socketInode (link: string): string | undefined {
  return /^socket:\[(\d+)\]$/.exec(link)?.[1]
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
