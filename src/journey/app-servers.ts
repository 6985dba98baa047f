// The app's own servers, observed by the plugin itself: `Fastify({ https, requestTimeout, … })` plus
// `app.register(journey.plugin)` measures every stage, with Fastify's own server options applied, and no
// serverFactory. A server someone observed already (journey.serverFactory(), journey.observeServer()) is
// left to them.
import { Server as HttpServer } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import { Server as NetServer } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { isObserved, type ObservableServer } from './observe-connection.ts'
import { isHttp2Server } from './observe-http2.ts'

/** Observe `server` as `listener`; `kernel`: also watch its accept queue. */
export type ObserveAs = (server: ObservableServer, listener: string, kernel: boolean) => void

/**
 * The listener name of a server Fastify built: `https` for TLS, else `http` (HTTP/1.1 or HTTP/2 alike).
 * Undefined for anything else (a server of a kind the journey does not know).
 */
function listenerNameOf (server: unknown): 'http' | 'https' | undefined {
  // https.Server is a tls.Server, not an http.Server; http2's servers are neither.
  const known = server instanceof HttpServer || server instanceof HttpsServer || (server instanceof NetServer && isHttp2Server(server))
  if (!known) return undefined
  return server instanceof TlsServer ? 'https' : 'http'
}

/**
 * Fastify listening on `localhost` (its default host) binds every address the name resolves to: the first
 * is `fastify.server`, the others are servers it builds in listen() and keeps under an internal symbol.
 * Undefined when this Fastify keeps them some other way (test/journey/internals.test.ts says so).
 */
export function secondaryServers (fastify: FastifyInstance): unknown[] | undefined {
  for (let o: object | null = fastify; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const key = Object.getOwnPropertySymbols(o).find(s => s.description === 'fastify.serverBindings')
    if (key !== undefined) {
      const servers = (o as Record<symbol, unknown>)[key]
      return Array.isArray(servers) ? servers : undefined
    }
  }
  return undefined
}

let fineTlsWarned = false

export function observeAppServers (fastify: FastifyInstance, observe: ObserveAs, fine: boolean): void {
  // At ready, not at registration: an app may still call journey.observeServer(app.server, 'public')
  // between the two, and its name wins. listen() waits for ready before it binds.
  fastify.addHook('onReady', function (done) {
    const server = this.server
    const listener = listenerNameOf(server)
    if (listener !== undefined && !isObserved(server)) {
      observe(server as ObservableServer, listener, true)
      if (fine && listener === 'https' && !fineTlsWarned) {
        fineTlsWarned = true
        process.emitWarning('fine mode times TLS decryption only on an https server listening through journey.listenerFor(server); on this app\'s own https server decryption stays in the read stage, as in default mode', { code: 'REQUEST_JOURNEY_FINE_TLS' })
      }
    }
    done()
  })
  // Fastify runs the onListen hooks in the same tick as the secondary servers' 'listening': no connection
  // is accepted in between, unless an async onListen hook registered before the journey defers this one.
  // Their accept queues are not watched (one queue per listener name: the main address's).
  fastify.addHook('onListen', function (done) {
    for (const server of secondaryServers(this) ?? []) {
      const listener = listenerNameOf(server)
      if (listener !== undefined && !isObserved(server as object)) observe(server as ObservableServer, listener, false)
    }
    done()
  })
}
