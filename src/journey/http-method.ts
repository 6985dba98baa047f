// The request method as the HTTP semantic conventions want it on spans and metrics: a method the
// instrumentation knows, else `_OTHER` (the span keeps the original in `http.request.method_original`).
// Known: the nine of RFC 9110 and 5789, and every method an observed app routes (a WebDAV app's PROPFIND
// stays PROPFIND). Otherwise a client could spread the metrics over every method Node's parser accepts,
// and a span name would say what a scanner made up.
import { HTTP_REQUEST_METHOD_VALUE_OTHER } from '@opentelemetry/semantic-conventions'

const known = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE'])

export const OTHER_METHOD: string = HTTP_REQUEST_METHOD_VALUE_OTHER

/** A route of an observed app takes this method: from now on it is itself on spans and metrics (process-wide). */
export function knowMethod (method: string): void {
  known.add(method)
}

export function methodLabel (method: string): string {
  return known.has(method) ? method : OTHER_METHOD
}
