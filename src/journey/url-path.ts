// The path of a request, for spans, log lines and the page: what the HTTP semantic conventions call
// url.path. The query is never emitted anywhere (it may carry tokens), so this is the one place that cuts it.

/**
 * The path of a request-target, without its query (which may carry secrets) or fragment: `/a/b` of
 * `/a/b?token=…` and of the absolute form `http://host/a/b?…`; `*` for `OPTIONS *`; undefined for a CONNECT's
 * `host:port`, which has none.
 */
export function urlPath (target: string): string | undefined {
  let start = 0
  if (!target.startsWith('/')) {
    if (target === '*') return target
    const scheme = target.indexOf('://')
    if (scheme === -1) return undefined
    start = target.indexOf('/', scheme + 3)
    const query = target.indexOf('?', scheme + 3)
    if (start === -1 || (query !== -1 && query < start)) return '/'
  }
  const query = target.indexOf('?', start)
  const fragment = target.indexOf('#', start)
  const end = Math.min(query === -1 ? target.length : query, fragment === -1 ? target.length : fragment)
  return target.slice(start, end)
}
