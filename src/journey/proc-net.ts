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
 * namespace's: several processes, or one on several addresses, may listen on one port).
 */
export function listenInodesOnPort (procNetTcp: string, port: number): string[] {
  const needle = `:${port.toString(16).toUpperCase().padStart(4, '0')} `
  const out: string[] = []
  for (const line of procNetTcp.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f[3] === TCP_LISTEN && `${f[1]} `.endsWith(needle) && f[9] !== undefined) out.push(f[9])
  }
  return out
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
