// The metrics' books, per method and route: the stages from read on (the first request's accept and tls are
// its connection's) plus the server's gaps (not the client's think time before its first byte) add up to the
// request durations. Overlapping stages would count time twice; a missing stage would lose it.
import { series, type Metrics } from '../../experiments/lib/metrics.ts'

export interface Books { parts: number, duration: number }

/** Per `method route`: what the stages and gaps add up to, and the request durations' sum. */
export function booksOf (m: Metrics): Map<string, Books> {
  const books = new Map<string, Books>()
  const entry = (method: string | undefined, route: string | undefined): Books => {
    const key = `${method} ${route}`
    let e = books.get(key)
    if (e === undefined) books.set(key, e = { parts: 0, duration: 0 })
    return e
  }
  for (const [labels, v] of series(m, 'journey_stage_duration_seconds_sum')) {
    if (labels.get('stage') !== 'accept' && labels.get('stage') !== 'tls') entry(labels.get('method'), labels.get('route')).parts += v
  }
  for (const [labels, v] of series(m, 'journey_gap_duration_seconds_sum')) {
    if (labels.get('gap') !== 'before_request') entry(labels.get('method'), labels.get('route')).parts += v
  }
  for (const [labels, v] of series(m, 'http_server_request_duration_seconds_sum')) entry(labels.get('http_request_method'), labels.get('http_route')).duration += v
  return books
}
