// What a graceful shutdown does with a server's open connections beyond what Node 24 offers: the public
// listeners (server.ts) and the admin listener (admin.ts) alike.
import { Server as HttpServer } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import { Server as NetServer, type Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'

export interface Connections {
  /** Closes those that have not sent a byte. */
  closeSilent: () => void
  /** Closes every one, at the shutdown deadline. */
  destroyAll: () => void
  /** Whether any has response bytes it has not yet handed to the kernel (see stopAccepting). */
  flushing: () => boolean
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
    destroyAll () { for (const socket of open) socket.destroy() },
    flushing () {
      for (const socket of open) if (socket.writableLength > 0) return true
      return false
    }
  }
}

/**
 * Stops `server` accepting, as its close() does, without the closeIdleConnections() an HTTP/1 server's close()
 * runs first. Node counts a connection idle once its request has been read and its response ended
 * (`res.end()` called), not written: a response ended in one piece — a 12 MB JSON body — to a client reading
 * slowly was destroyed with all that was not yet in the kernel (3.9 of 12.6 MB arrived, over HTTP and HTTPS
 * alike), and a streamed download lost the last buffer it had queued (45 KB short, once, in CI). The caller
 * closes idle connections itself, while no connection is flushing (server.ts's closeServer).
 */
export function stopAccepting (server: NetServer, done: () => void): void {
  if (server instanceof HttpsServer) TlsServer.prototype.close.call(server, done)
  else if (server instanceof HttpServer) NetServer.prototype.close.call(server, done)
  else server.close(() => { done() }) // HTTP/2 (whose close() also sends each session its GOAWAY), the cipher tap
}
