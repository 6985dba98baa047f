// Prometheus metrics fed from finished records: every request, every stage, sampled or not.
// Exemplars carry the trace id of requests whose trace was kept, so a dot on a latency panel opens its waterfall.
import { Gauge } from 'prom-client'
import { asPromClientRegistry, type MetricsRegistry } from './metrics-registry.ts'
import { errorTypeOf, latestError, ownedBy, type ConnectionRecord, type DroppedConnection, type JourneyOwner, type RequestRecord } from './records.ts'
import { subscribe } from './publish.ts'
import { tableOf } from './timeline.ts'
import { FastHistogram, type Series } from './histogram.ts'
import { FastCounter, type CounterSeries } from './counter.ts'
import { methodLabel } from './http-method.ts'
import {
  CONNECTION_DURATION_BUCKETS, HTTP_DURATION_BUCKETS, KERNEL_WAIT_BUCKETS, METRIC, REQUESTS_PER_CONNECTION_BUCKETS, SIZE_BUCKETS,
  STAGE_BUCKETS, STAGES
} from './stages.ts'

export interface MetricsConsumer {
  /**
   * A listener is observed: its counters of events that may never happen start at 0 — dropped connections,
   * and connection errors and failed handshakes for each reason its server can give (knownReasons) — so the
   * first such event is an increase Prometheus can see (a series born at 1 would be invisible to `increase()`
   * and `rate()`, and to the alert that reads it: deploy/prometheus/alerts.yml). Its open connections read 0.
   */
  listen: (listener: string, reasons: { connectionErrors: string[], tlsFailures: string[] }) => void
  close: () => void
}

/** Bucket bounds of the histograms kept per route (createJourney's `buckets`, checked). */
interface RouteBuckets {
  /** Stages and gaps, and the TLS handshake (the tls stage, by listener). */
  stages: readonly number[]
  /** http_server_request_duration_seconds. */
  requests: readonly number[]
  /** Bytes: http_server_request_body_size_bytes and journey_response_written_bytes. */
  sizes: readonly number[]
}
const DEFAULT_BUCKETS: RouteBuckets = { stages: STAGE_BUCKETS, requests: HTTP_DURATION_BUCKETS, sizes: SIZE_BUCKETS }

/** Without an owner it counts the records of every journey in the process. */
export function createMetricsConsumer (registry: MetricsRegistry, owner?: JourneyOwner, buckets = DEFAULT_BUCKETS): MetricsConsumer {
  const registers = [asPromClientRegistry(registry)]
  // Observed for every request: bound series, no per-observation label hashing (see histogram.ts).
  // Exemplars are kept either way; the registry writes them only in the OpenMetrics format.
  const stageDuration = new FastHistogram({
    name: METRIC.stageDuration,
    help: 'Time a request spent in each stage of its journey (docs/stages.md says where each stage starts and ends).',
    labelNames: ['stage', 'method', 'route'],
    buckets: buckets.stages,
    registers
  })
  const gapDuration = new FastHistogram({
    name: METRIC.gapDuration,
    help: 'Time inside a request covered by no stage, by kind: hooks (the server between stages: other plugins\' hooks), pipelined (a response waiting for earlier ones on its connection), error_handler (from an error to the next stage: Fastify\'s error handling), before_request (a connection\'s first request: the client\'s think time). The stages from read on (not accept and tls, which come before a connection\'s first request) plus hooks, pipelined and error_handler add up to http_server_request_duration_seconds.',
    labelNames: ['gap', 'method', 'route'],
    buckets: buckets.stages,
    registers
  })
  const requestDuration = new FastHistogram({
    name: METRIC.requestDuration,
    help: 'Duration of HTTP server requests: first request byte seen by the parser to the response handed to the kernel. http_response_status_code only where a status was sent; error_type the 5xx status, or aborted for a request cut off before its response finished.',
    labelNames: ['http_request_method', 'http_route', 'http_response_status_code', 'error_type', 'url_scheme', 'network_protocol_version'],
    buckets: buckets.requests,
    registers
  })
  const requestBodySize = new FastHistogram({
    name: METRIC.requestBodySize,
    help: 'Size of HTTP request bodies on the wire, before decompression: the Content-Length of an HTTP/1 body that arrived whole; the bytes that arrived of a chunked or HTTP/2 body.',
    labelNames: ['http_request_method', 'http_route'],
    buckets: buckets.sizes,
    registers
  })
  const responseWritten = new FastHistogram({
    name: METRIC.responseWritten,
    help: 'Bytes of each response (status line, headers and body, before TLS) handed to the socket.',
    labelNames: ['http_request_method', 'http_route'],
    buckets: buckets.sizes,
    registers
  })
  const accepted = new FastCounter({ name: METRIC.connectionsAccepted, help: 'Connections that reached user space.', labelNames: ['listener'], registers })
  const dropped = new FastCounter({
    name: METRIC.connectionsDropped,
    help: 'Connections Node closed as soon as it accepted them, unserved, because the server already had server.maxConnections open (its \'drop\' event); not in journey_connections_accepted_total.',
    labelNames: ['listener'], registers
  })
  // The open connections (this journey's), from their 'open' to their 'close': the gauges of open
  // connections and of requests in flight are read from them at scrape time, so neither costs anything
  // per connection or per request, and both are exact at the moment Prometheus reads them.
  const open = new Set<ConnectionRecord>()
  const listenersSeen = new Set<string>()
  new Gauge({
    name: METRIC.connectionsActive,
    help: 'Connections currently open.',
    labelNames: ['listener'] as const,
    registers,
    collect () {
      const counts = new Map<string, number>()
      for (const conn of open) counts.set(conn.listener, (counts.get(conn.listener) ?? 0) + 1)
      for (const listener of counts.keys()) listenersSeen.add(listener)
      // A listener once seen reads 0 when all its connections closed, rather than vanishing.
      for (const listener of listenersSeen) this.set({ listener }, counts.get(listener) ?? 0)
    }
  })
  const closed = new FastCounter({
    name: METRIC.connectionsClosed,
    help: 'Connections closed, by the side that ended them first: client (its FIN or reset came first) or server (connection: close after a response, a timeout, an error, shutdown).',
    labelNames: ['listener', 'by'],
    registers
  })
  const connDuration = new FastHistogram({
    name: METRIC.connectionDuration, help: 'Connection life, accept to close.', labelNames: ['listener'],
    buckets: CONNECTION_DURATION_BUCKETS, registers
  })
  const connRequests = new FastHistogram({
    name: METRIC.connectionRequests, help: 'Requests served per connection, observed at close.', labelNames: ['listener'],
    buckets: REQUESTS_PER_CONNECTION_BUCKETS, registers
  })
  const connErrors = new FastCounter({
    name: METRIC.connectionErrors, help: 'Connection-level HTTP errors (malformed requests, header overflow, timeouts, clients closing mid-request) by reason.',
    labelNames: ['listener', 'reason'], registers
  })
  const tlsDuration = new FastHistogram({
    name: METRIC.tlsHandshakeDuration,
    help: 'TLS handshake: connection accepted to secure connection established (includes waiting for the client\'s flights: its ClientHello, and its Finished a round trip later).',
    labelNames: ['listener', 'protocol', 'resumed'], buckets: buckets.stages, registers
  })
  const kernelWait = new FastHistogram({
    name: METRIC.acceptKernelWait,
    help: 'Linux TCP_INFO at accept: how long the connection had waited in the kernel before the server took it (since the client\'s last ACK; 1000/HZ s resolution). Absent without the TCP_INFO addon.',
    labelNames: ['listener'], buckets: KERNEL_WAIT_BUCKETS, registers
  })
  const readKernelWait = new FastHistogram({
    name: METRIC.readKernelWait,
    help: 'Linux TCP_INFO, sampled requests only (every request with JOURNEY_PRECISION=fine): how long a request\'s bytes sat in the kernel receive queue before the server read them (1000/HZ s resolution).',
    labelNames: ['listener'], buckets: KERNEL_WAIT_BUCKETS, registers
  })
  const readKernelWaitBy = new Map<string, Series>()
  const activeSeen = new Set<string>()
  new Gauge({
    name: METRIC.activeRequests,
    help: 'HTTP requests in flight: handed over by the parser (or, on HTTP/2, by the session), their response not finished yet, at the moment of the scrape.',
    labelNames: ['http_request_method', 'url_scheme'] as const,
    registers,
    collect () {
      const counts = new Map<string, number>()
      for (const conn of open) {
        for (const rec of conn.inflight) {
          const key = `${methodLabel(rec.method)} ${rec.scheme}`
          counts.set(key, (counts.get(key) ?? 0) + 1)
        }
      }
      // A label set once seen (here, or finished: onRequest) reads 0 when idle, rather than vanishing (a panel
      // would show "no data").
      for (const key of counts.keys()) activeSeen.add(key)
      for (const key of activeSeen) {
        const [method, scheme] = key.split(' ') as [string, string]
        this.set({ http_request_method: method, url_scheme: scheme }, counts.get(key) ?? 0)
      }
    }
  })
  const tlsFailures = new FastCounter({
    name: METRIC.tlsHandshakeFailures, help: 'TLS handshakes that failed, by reason.', labelNames: ['listener', 'reason'], registers
  })

  // A connection's series, bound per listener (a handful: the app's servers) on its first connection: an
  // accept and a close each add to numbers, with no label object built or hashed (counter.ts says why).
  interface ListenerSeries {
    accepted: CounterSeries
    closedByClient: CounterSeries
    closedByServer: CounterSeries
    duration: Series
    requests: Series
    /** Bound on first use: absent without the TCP_INFO addon. */
    kernelWait: Series | undefined
  }
  const byListener = new Map<string, ListenerSeries>()
  function listenerSeries (listener: string): ListenerSeries {
    let ls = byListener.get(listener)
    if (ls === undefined) {
      ls = {
        accepted: accepted.series(listener),
        closedByClient: closed.series(listener, 'client'),
        closedByServer: closed.series(listener, 'server'),
        duration: connDuration.series(listener),
        requests: connRequests.series(listener),
        kernelWait: undefined
      }
      byListener.set(listener, ls)
    }
    return ls
  }

  // Series bound per route and method (both bounded: route templates, and methods the app routes or
  // `_OTHER`: http-method.ts), found by the method as received.
  interface RouteSeries {
    method: string
    stages: Array<Series | undefined>
    hooks: Series
    pipelined: Series | undefined
    errorHandler: Series | undefined
    beforeRequest: Series | undefined
    requestBody: Series
    written: Series
    durations: Map<number, Series>
  }
  const bound = new Map<string, Map<string, RouteSeries>>()
  function seriesFor (route: string, method: string): RouteSeries {
    let byMethod = bound.get(route)
    if (byMethod === undefined) bound.set(route, byMethod = new Map())
    let rs = byMethod.get(method)
    if (rs === undefined) {
      const label = methodLabel(method)
      rs = {
        method: label,
        // Bound on first use, so stages a route never has (tls on plain HTTP) make no empty series.
        stages: new Array(STAGES.length),
        hooks: gapDuration.series('hooks', label, route),
        pipelined: undefined,
        errorHandler: undefined,
        beforeRequest: undefined,
        requestBody: requestBodySize.series(label, route),
        written: responseWritten.series(label, route),
        durations: new Map()
      }
      byMethod.set(method, rs)
    }
    return rs
  }

  function onRequest (message: unknown): void {
    const rec = message as RequestRecord
    if (!ownedBy(rec.conn, owner)) return
    // The timeline as numbers, shared with the other consumers: an untraced request allocates nothing here.
    const tl = tableOf(rec)
    const route = rec.route
    const rs = seriesFor(route, rec.method)
    const method = rs.method
    // Kept requests lend their trace to the buckets they land in: one label set and clock read per request.
    const exemplar = rec.keptBy === undefined || rec.traceId === undefined
      ? undefined
      : { traceId: rec.traceId, spanId: rec.spanId ?? '' }
    const at = exemplar === undefined ? 0 : Date.now() / 1000
    for (let k = 0; k < tl.count; k++) {
      const index = tl.index[k]!
      const series = rs.stages[index] ??= stageDuration.series(STAGES[index]!, method, route)
      const seconds = (tl.to[k]! - tl.from[k]!) / 1000
      if (exemplar === undefined) series.observe(seconds)
      else series.observeWithExemplar(seconds, exemplar, at)
    }
    // Every request has a hooks gap (often a few µs); the others only where they happened, so their counts
    // say how many requests waited, how many had an error, and how many connections' first requests there were.
    if (exemplar === undefined) rs.hooks.observe(tl.hooksMs / 1000)
    else rs.hooks.observeWithExemplar(tl.hooksMs / 1000, exemplar, at)
    if (tl.pipelinedMs > 0) (rs.pipelined ??= gapDuration.series('pipelined', method, route)).observe(tl.pipelinedMs / 1000)
    if (tl.errorHandlerMs > 0) (rs.errorHandler ??= gapDuration.series('error_handler', method, route)).observe(tl.errorHandlerMs / 1000)
    // Measured only on a connection's first request, and only with the parser's first-byte mark (without
    // it the timeline reports 0, which is no measurement).
    if (!Number.isNaN(rec.acceptedAt) && !Number.isNaN(rec.beginAt)) {
      (rs.beforeRequest ??= gapDuration.series('before_request', method, route)).observe(tl.idleBeforeRequestMs / 1000)
    }
    // A number key (the status, 0 when none was sent; aborted or not; the scheme; the version): no string is
    // built per request to find the series.
    const version = rec.protocolVersion
    const key = (((rec.status * 2) + (rec.aborted ? 1 : 0)) * 2 + (rec.scheme === 'https' ? 1 : 0)) * 3 + (version === '1.1' ? 0 : version === '2' ? 1 : 2)
    let duration = rs.durations.get(key)
    if (duration === undefined) {
      // As the semantic conventions have it, and as the request span says it: the status only if one was
      // sent (a request cut off before its headers went out has none), the error in error_type. An empty
      // value leaves the label out (histogram.ts).
      duration = requestDuration.series(method, route, rec.status > 0 ? String(rec.status) : '', errorTypeOf(rec) ?? '', rec.scheme, version)
      rs.durations.set(key, duration)
      // Here, once per new series, not per request: a label set that served a request reads 0 in flight when
      // idle, though no scrape ever caught it running (one-at-a-time requests never are).
      activeSeen.add(`${method} ${rec.scheme}`)
    }
    // From the read stage's start, not beginAt: in fine mode a TLS 1.3 request's first ciphertext can arrive
    // before the handshake ends, and that time is the tls stage's.
    const seconds = (tl.end - tl.requestStart) / 1000
    if (exemplar === undefined) duration.observe(seconds)
    else duration.observeWithExemplar(seconds, exemplar, at)
    if (!Number.isNaN(rec.requestBodyBytes)) rs.requestBody.observe(rec.requestBodyBytes)
    if (!Number.isNaN(rec.kernelReadWaitMs)) {
      const listener = rec.conn.listener
      let s = readKernelWaitBy.get(listener)
      if (s === undefined) readKernelWaitBy.set(listener, s = readKernelWait.series(listener))
      s.observe(rec.kernelReadWaitMs / 1000)
    }
    // Not measured for answers given before the journey's hooks ran (NaN).
    if (!rec.aborted && !Number.isNaN(rec.bytesWritten)) rs.written.observe(rec.bytesWritten)
  }

  function onOpen (message: unknown): void {
    if (!ownedBy(message as ConnectionRecord, owner)) return
    const { listener, kernel } = message as ConnectionRecord
    open.add(message as ConnectionRecord)
    listenersSeen.add(listener)
    const ls = listenerSeries(listener)
    ls.accepted.inc()
    if (kernel !== undefined) (ls.kernelWait ??= kernelWait.series(listener)).observe(kernel.lastAckRecvMs / 1000)
  }

  function onDrop (message: unknown): void {
    const drop = message as DroppedConnection
    if (ownedBy(drop, owner)) dropped.series(drop.listener).inc()
  }

  function onTls (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, owner)) return
    if (conn.tlsFailure !== undefined) {
      tlsFailures.series(conn.listener, conn.tlsFailure).inc()
      return
    }
    // prom-client's histograms threw on a value that is no number; these bound series would file it in the
    // first bucket and make the sum NaN for good: a handshake without both marks is not observed.
    const seconds = (conn.secureAt - conn.acceptedAt) / 1000
    if (!Number.isFinite(seconds)) return
    // Found by its labels each time: a lookup is nothing beside the handshake it measures.
    tlsDuration.series(conn.listener, conn.tlsProtocol ?? 'unknown', String(conn.tlsResumed)).observe(seconds)
  }

  // Counted as it happens, not at close: the socket closes after the error is answered, and whoever saw it
  // close (a client, then a scrape) must find the error counted already.
  function onError (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, owner)) return
    connErrors.series(conn.listener, latestError(conn)).inc()
  }

  function onClose (message: unknown): void {
    const conn = message as ConnectionRecord
    if (!ownedBy(conn, owner)) return
    open.delete(conn)
    const ls = listenerSeries(conn.listener)
    if (conn.closedBy === 'client') ls.closedByClient.inc()
    else ls.closedByServer.inc()
    ls.duration.observe((conn.closeAt - conn.acceptAt) / 1000)
    ls.requests.observe(conn.requests)
  }

  const unsubscribe = subscribe({
    request: onRequest, connectionOpen: onOpen, connectionTls: onTls,
    connectionError: onError, connectionClose: onClose, connectionDrop: onDrop
  })
  return {
    listen (listener, reasons) {
      listenersSeen.add(listener) // its open connections read 0 from the start
      dropped.series(listener)
      for (const reason of reasons.connectionErrors) connErrors.series(listener, reason)
      for (const reason of reasons.tlsFailures) tlsFailures.series(listener, reason)
    },
    close () {
      unsubscribe()
      // No close is seen from here on: holding the connections would keep counting them open, and their records.
      open.clear()
    }
  }
}
