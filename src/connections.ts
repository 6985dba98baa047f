// What a graceful shutdown does with a server's open connections beyond what Node 24 offers: the public
// listeners (server.ts) and the admin listener (admin.ts) alike.
import type { Server as NetServer, Socket } from 'node:net'

export interface Connections {
  /** Closes those that have not sent a byte. */
  closeSilent: () => void
  /** Closes every one, at the shutdown deadline. */
  destroyAll: () => void
}

/**
 * The connections of `server`, seen at `event`, for two things Node 24 does not do at shutdown. Its
 * closeIdleConnections() leaves a connection that has sent nothing open (nodejs/node#63452; fixed in later
 * lines), so a single one — a browser's preconnect, a client pool opened ahead of use — held a graceful
 * shutdown for its whole deadline; one with bytes read has begun a request (a TLS socket counts plaintext, an
 * HTTP/2 one its preface) and is left to finish. And an HTTP/2 server has no closeAllConnections(): a session
 * that got its GOAWAY ends its socket and waits for the client to close its side, and destroying the session
 * then does nothing, so a client that never closed kept the process alive past the deadline, for ever.
 */
export function trackConnections (server: NetServer, event: 'connection' | 'secureConnection'): Connections {
  const open = new Set<Socket>()
  server.on(event, (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => { open.delete(socket) })
  })
  return {
    closeSilent () { for (const socket of open) if (socket.bytesRead === 0) socket.destroy() },
    destroyAll () { for (const socket of open) socket.destroy() }
  }
}
