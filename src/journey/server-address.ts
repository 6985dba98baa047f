// server.address and server.port of a request span: the host and port the client asked for, as the HTTP
// semantic conventions define them for servers (so a client's span and the server's name the same server).
// Pure: the span attributes pass in the request-target and the host Fastify settled on.

export interface ServerAddress {
  address: string
  /** Undefined when the authority names a port that is no port (a client's Host header can say anything). */
  port: number | undefined
}

/**
 * The server a request was sent to. An absolute-form request-target (`GET http://host:8080/a`, what a
 * client sends to a proxy) names it itself; otherwise `host`: Fastify's `request.host`, which is the
 * X-Forwarded-Host of a proxy the app trusts (`trustProxy`), else HTTP/2's `:authority`, else `Host`.
 * Without a port, the scheme's default one: that is the port the authority means (RFC 9110, 4.2).
 */
export function serverAddressOf (target: string, host: string | undefined, scheme: 'http' | 'https'): ServerAddress | undefined {
  let authority = host
  const schemeEnd = target.startsWith('/') ? -1 : target.indexOf('://')
  if (schemeEnd !== -1) {
    const rest = target.slice(schemeEnd + 3)
    const end = rest.search(/[/?#]/)
    authority = end === -1 ? rest : rest.slice(0, end)
  }
  if (authority === undefined) return undefined
  // Credentials in an absolute-form target (http://user:secret@host/) are never emitted.
  authority = authority.slice(authority.lastIndexOf('@') + 1)
  let address: string
  let portText: string | undefined
  if (authority.startsWith('[')) {
    // An IPv6 literal: [::1]:8080. The address without its brackets, as a client's server.address is.
    const close = authority.indexOf(']')
    if (close === -1) return undefined
    address = authority.slice(1, close)
    const rest = authority.slice(close + 1)
    if (rest !== '' && !rest.startsWith(':')) return undefined
    portText = rest === '' ? undefined : rest.slice(1)
  } else {
    const colon = authority.lastIndexOf(':')
    address = colon === -1 ? authority : authority.slice(0, colon)
    portText = colon === -1 ? undefined : authority.slice(colon + 1)
  }
  if (address === '') return undefined
  if (portText === undefined || portText === '') return { address, port: scheme === 'https' ? 443 : 80 }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
  return { address, port: port <= 65535 ? port : undefined }
}
