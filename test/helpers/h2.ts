// An HTTP/2 request with Node's own client, for the tests of HTTP/2 apps.
import type { ClientHttp2Session } from 'node:http2'

/** Sends one request on `session` (a JSON body, if given) and resolves with its status once its response has ended. */
export function h2 (session: ClientHttp2Session, path: string, method = 'GET', body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': method, ...(body === undefined ? {} : { 'content-type': 'application/json' }) })
    let status = 0
    stream.on('response', h => { status = Number(h[':status']) })
    stream.on('error', reject)
    stream.resume()
    stream.on('end', () => resolve(status))
    stream.end(body)
  })
}
