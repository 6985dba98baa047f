// Prometheus metrics fed from finished records: every request, every stage, sampled or not.
// Exemplars carry the trace id of requests whose trace was kept, so a dot on a latency panel opens its waterfall.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ConnectionRecord, RequestRecord } from './records.ts'
import { channels } from './publish.ts'
import { buildTimeline } from './timeline.ts'
import {
  CONNECTION_DURATION_BUCKETS, HTTP_DURATION_BUCKETS, METRIC, REQUESTS_PER_CONNECTION_BUCKETS, SIZE_BUCKETS,
  STAGE_BUCKETS
} from './stages.ts'

export interface MetricsConsumer { close: () => void }

const NO_EXEMPLAR = {}

export function createMetricsConsumer (registry: Registry<any>): MetricsConsumer {
  const registers = [registry]
  // prom-client renders exemplars only in OpenMetrics; on a classic registry the journey simply has none.
  const enableExemplars = registry.contentType === Registry.OPENMETRICS_CONTENT_TYPE
  const stageDuration = new Histogram({
    name: METRIC.stageDuration,
    help: 'Time a request spent in each stage of its journey (docs/stages.md says where each stage starts and ends).',
    labelNames: ['stage', 'method', 'route'] as const,
    buckets: STAGE_BUCKETS,
    enableExemplars,
    registers
  })
  const requestDuration = new Histogram({
    name: METRIC.requestDuration,
    help: 'Duration of HTTP server requests: first request byte seen by the parser to the response handed to the kernel.',
    labelNames: ['http_request_method', 'http_route', 'http_response_status_code', 'url_scheme'] as const,
    buckets: HTTP_DURATION_BUCKETS,
    enableExemplars,
    registers
  })
  const requestBodySize = new Histogram({
    name: METRIC.requestBodySize,
    help: 'Size of HTTP request bodies on the wire (Content-Length, before decompression).',
    labelNames: ['http_request_method', 'http_route'] as const,
    buckets: SIZE_BUCKETS,
    registers
  })
  const responseWritten = new Histogram({
    name: METRIC.responseWritten,
    help: 'Bytes of each response (status line, headers and body, before TLS) handed to the socket.',
    labelNames: ['http_request_method', 'http_route'] as const,
    buckets: SIZE_BUCKETS,
    registers
  })
  const accepted = new Counter({ name: METRIC.connectionsAccepted, help: 'Connections that reached user space.', labelNames: ['listener'] as const, registers })
  const active = new Gauge({ name: METRIC.connectionsActive, help: 'Connections currently open.', labelNames: ['listener'] as const, registers })
  const closed = new Counter({ name: METRIC.connectionsClosed, help: 'Connections closed.', labelNames: ['listener'] as const, registers })
  const connDuration = new Histogram({
    name: METRIC.connectionDuration, help: 'Connection life, accept to close.', labelNames: ['listener'] as const,
    buckets: CONNECTION_DURATION_BUCKETS, registers
  })
  const connRequests = new Histogram({
    name: METRIC.connectionRequests, help: 'Requests served per connection, observed at close.', labelNames: ['listener'] as const,
    buckets: REQUESTS_PER_CONNECTION_BUCKETS, registers
  })
  const connErrors = new Counter({
    name: METRIC.connectionErrors, help: 'Connection-level HTTP errors (malformed requests, header overflow, timeouts) by reason.',
    labelNames: ['listener', 'reason'] as const, registers
  })
  const tlsDuration = new Histogram({
    name: METRIC.tlsHandshakeDuration,
    help: 'TLS handshake: connection accepted to secure connection established (includes waiting for the ClientHello).',
    labelNames: ['listener', 'protocol', 'resumed'] as const, buckets: STAGE_BUCKETS, registers
  })
  const tlsFailures = new Counter({
    name: METRIC.tlsHandshakeFailures, help: 'TLS handshakes that failed, by reason.', labelNames: ['listener', 'reason'] as const, registers
  })

  function onRequest (message: unknown): void {
    const rec = message as RequestRecord
    const tl = buildTimeline(rec)
    const exemplar = rec.keptBy === undefined || rec.traceId === undefined
      ? NO_EXEMPLAR
      : { traceId: rec.traceId, spanId: rec.spanId ?? '' }
    const { method, route } = rec
    for (const iv of tl.stages) {
      observe(stageDuration, { stage: iv.stage, method, route }, (iv.end - iv.start) / 1000, exemplar)
    }
    const begin = Number.isNaN(rec.beginAt) ? rec.requestAt : rec.beginAt
    observe(requestDuration,
      { http_request_method: method, http_route: route, http_response_status_code: rec.aborted ? 'aborted' : String(rec.status), url_scheme: rec.scheme },
      (tl.end - begin) / 1000, exemplar)
    if (!Number.isNaN(rec.requestBodyBytes)) requestBodySize.observe({ http_request_method: method, http_route: route }, rec.requestBodyBytes)
    if (!rec.aborted) responseWritten.observe({ http_request_method: method, http_route: route }, rec.bytesWritten)
  }

  function observe<T extends string> (h: Histogram<T>, labels: Partial<Record<T, string>>, value: number, exemplarLabels: object): void {
    if (enableExemplars) h.observe({ labels, value, exemplarLabels } as never)
    else h.observe(labels, value)
  }

  function onOpen (message: unknown): void {
    const { listener } = message as ConnectionRecord
    accepted.inc({ listener })
    active.inc({ listener })
  }

  function onTls (message: unknown): void {
    const conn = message as ConnectionRecord
    if (conn.tlsFailure !== undefined) {
      tlsFailures.inc({ listener: conn.listener, reason: conn.tlsFailure })
      return
    }
    tlsDuration.observe(
      { listener: conn.listener, protocol: conn.tlsProtocol ?? 'unknown', resumed: String(conn.tlsResumed) },
      (conn.secureAt - conn.acceptedAt) / 1000)
  }

  function onClose (message: unknown): void {
    const conn = message as ConnectionRecord
    const { listener } = conn
    active.dec({ listener })
    closed.inc({ listener })
    connDuration.observe({ listener }, (conn.closeAt - conn.acceptAt) / 1000)
    connRequests.observe({ listener }, conn.requests)
    for (const reason of conn.errors) connErrors.inc({ listener, reason })
  }

  channels.request.subscribe(onRequest)
  channels.connectionOpen.subscribe(onOpen)
  channels.connectionTls.subscribe(onTls)
  channels.connectionClose.subscribe(onClose)
  return {
    close () {
      channels.request.unsubscribe(onRequest)
      channels.connectionOpen.unsubscribe(onOpen)
      channels.connectionTls.unsubscribe(onTls)
      channels.connectionClose.unsubscribe(onClose)
    }
  }
}
