// The bus between observers and consumers: diagnostics_channel, as fastify and undici use it.
// Publishing checks hasSubscribers first, so a record nobody listens to costs nothing more.
import diagnostics from 'node:diagnostics_channel'
import type { ConnectionRecord, RequestRecord } from './records.ts'

export const channels = {
  /** A request's response finished, or the request was cut off: its record is complete. */
  request: diagnostics.channel('request-journey:request'),
  /** A connection reached user space. */
  connectionOpen: diagnostics.channel('request-journey:connection:open'),
  /** A TLS handshake finished, successfully or not (tlsFailure says which). */
  connectionTls: diagnostics.channel('request-journey:connection:tls'),
  /**
   * A connection-level HTTP error (malformed request, header overflow, timeout): the newest entry of
   * conn.errors says which. Published when it happens, before Node closes the socket, so a client that
   * saw its connection cut finds the error already counted.
   */
  connectionError: diagnostics.channel('request-journey:connection:error'),
  /** A connection closed: its record is complete. */
  connectionClose: diagnostics.channel('request-journey:connection:close'),
  /**
   * A connection Node closed as soon as it accepted it, because its server had `maxConnections` open (the
   * server's 'drop' event): it never reaches 'connection', so it has no record, only a DroppedConnection.
   */
  connectionDrop: diagnostics.channel('request-journey:connection:drop')
}

export function publishRequest (rec: RequestRecord): void {
  // An ignored route's request (ignoreRoutes) is no consumer's: no histogram, span or page row.
  if (!rec.ignored && channels.request.hasSubscribers) channels.request.publish(rec)
  // Subscribers run synchronously: whatever needed the request has had it.
  rec.request = undefined
  rec.response = undefined
  rec.reply = undefined
}

export function publishConnection (channel: diagnostics.Channel, conn: ConnectionRecord): void {
  if (channel.hasSubscribers) channel.publish(conn)
}

/** A consumer's handlers, by the channel each listens on. */
export type Handlers = Partial<Record<keyof typeof channels, (message: unknown) => void>>

/**
 * Subscribes a consumer's handlers; the function returned unsubscribes exactly those. A consumer subscribes
 * when it is created, so consumers created earlier run first on a channel (the span consumer before the
 * others, which read what it kept).
 */
export function subscribe (handlers: Handlers): () => void {
  const pairs = Object.entries(handlers).map(([name, fn]) => [channels[name as keyof typeof channels], fn] as const)
  for (const [channel, fn] of pairs) channel.subscribe(fn)
  return () => { for (const [channel, fn] of pairs) channel.unsubscribe(fn) }
}
