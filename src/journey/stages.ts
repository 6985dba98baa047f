// The one list of stages, span names, attribute keys and metric names.
// Dashboards, docs/stages.md and tests rely on these strings: change them here or nowhere.

export const STAGES = [
  'accept', 'tls', 'read', 'decrypt', 'parse', 'decode', 'handler', 'serialize', 'write'
] as const
export type Stage = typeof STAGES[number]

/** One line per stage, for dashboards and tooltips; docs/stages.md has the full definitions and blind spots. */
export const STAGE_MEANING: Record<Stage, string> = {
  accept: 'user-space connection set-up after accept() (first request of a connection; the kernel accept-queue wait is not in it).',
  tls: 'TLS handshake, from the accepted connection to the secure connection (first request of a TLS connection): the server\'s work and the waits for the client\'s flights, its ClientHello and, a round trip after the server\'s reply, its Finished (which includes the client\'s own certificate checks).',
  read: 'from the first request byte the parser saw to the complete header block (on HTTPS it includes decryption unless JOURNEY_PRECISION=fine).',
  decrypt: 'JOURNEY_PRECISION=fine on HTTPS only: decrypting the chunk that completed the header block.',
  parse: 'Node building the request and response objects, Fastify routing and creating its Request/Reply.',
  decode: 'receiving the rest of the body, decompressing, parsing (JSON, protobuf) and schema validation. A traced request\'s decode span says which was long: journey.decode.body_received_ms (the body had all arrived) and body_parsed_ms (parsed; validation follows).',
  handler: 'the route handler\'s own work. A traced request\'s handler span says how much of it was the handler\'s synchronous part, which held the event loop, rather than waiting: journey.handler.sync_ms.',
  serialize: 'Fastify\'s response serializer and preSerialization hooks (zero when the payload needs none).',
  write: 'handing the response bytes to the kernel, onSend hooks, response compression and backpressure included (not acknowledged by the client).'
}

/** One colour per stage, shared by the built-in page and the Grafana dashboards. */
export const STAGE_COLORS: Record<Stage, string> = {
  accept: '#8e8e8e',
  tls: '#b877d9',
  read: '#5794f2',
  decrypt: '#8f3bb8',
  parse: '#73bf69',
  decode: '#fade2a',
  handler: '#ff9830',
  serialize: '#f2495c',
  write: '#37872d'
}
/** Gaps (time between stages) are light grey everywhere: on the page, the bar behind the stages. */
export const GAP_COLOR = '#dcdcdc'

/**
 * Time inside a request covered by no stage (docs/stages.md, "Gaps"): the `gap` label of
 * journey_gap_duration_seconds and the journey.gap.* attributes of the request span.
 */
export const GAPS = ['before_request', 'hooks', 'pipelined', 'error_handler'] as const
export type Gap = typeof GAPS[number]
/** The gaps that are the server's time (before_request is the client's): what views show beside the stages. */
export const SERVER_GAPS = ['hooks', 'pipelined', 'error_handler'] as const satisfies readonly Gap[]
export type ServerGap = typeof SERVER_GAPS[number]
/** How views name a gap next to the stages: `gap: hooks`. */
export const gapLabel = (gap: Gap): `gap: ${Gap}` => `gap: ${gap}`
export const GAP_MEANING: Record<Gap, string> = {
  before_request: 'first request of a connection: from the connection being ready (accepted, or TLS done) to its first byte — the client\'s think time, save where its bytes had arrived and waited in the kernel for a busy event loop (the read span\'s journey.read.kernel_wait_ms, counted from their arrival, perhaps before accept).',
  hooks: 'the server\'s own time between stages: other plugins\' onRequest and preHandler hooks, a not-found handler, the handler of a route added before the plugin; never zero, since it also holds Fastify running the hooks and the journey\'s own onRequest work (≈ 1.6 µs a request where the journey\'s is the only hook; more for traced requests, whose span starts there).',
  pipelined: 'HTTP/1.1 pipelining: a response ready early waited for the earlier ones on its connection (observed only when it did).',
  error_handler: 'an error reply (a body that is not JSON, a failed validation, a hook or handler that threw): from the error to the next stage — Fastify\'s error handling, your setErrorHandler or its default (which logs the error and serializes it). The stage that was running ends at the error (observed only when there was one).'
}

/** How read and parse are observed (docs/stages.md, "Precision modes"); every span says which, as journey.precision. */
export const PRECISIONS = ['default', 'fine'] as const
export type Precision = typeof PRECISIONS[number]

export const SPAN_CONNECTION = 'journey.connection'
const STAGE_SPAN_NAMES = Object.fromEntries(STAGES.map(s => [s, `journey.${s}`])) as Record<Stage, string>
/** `journey.<stage>`; looked up, not concatenated, since every traced request names several. */
export const stageSpanName = (stage: Stage): string => STAGE_SPAN_NAMES[stage]

/** Attribute keys the journey adds on top of the stable HTTP semantic conventions. */
export const ATTR = {
  precision: 'journey.precision',
  samplingRule: 'journey.sampling.rule',
  /**
   * Head-sampled, but the export queue had no room when the request started: it ran untraced (its logs carry
   * no trace id, its handler's own spans were not recorded) and was kept at its end when room came back.
   */
  queueFullAtStart: 'journey.sampling.queue_full_at_start',
  listener: 'journey.listener',
  connectionId: 'journey.connection.id',
  requestIndex: 'journey.connection.request_index',
  connectionRequests: 'journey.connection.requests',
  connectionBytesRead: 'journey.connection.bytes_read',
  connectionBytesWritten: 'journey.connection.bytes_written',
  /** `client` or `server`: which side ended the connection first. */
  connectionClosedBy: 'journey.connection.closed_by',
  readIncludesDecrypt: 'journey.read.includes_decrypt',
  /** HTTP/2 requests only (false): no read stage, since Node reads and decodes HTTP/2 frames natively. */
  readSeen: 'journey.read.seen',
  acceptQueueWait: 'journey.accept.queue_wait_measured',
  /** TCP_INFO at accept: ms since the client's last ACK (the handshake's, if it has sent nothing), 1000/HZ ms resolution. */
  acceptKernelWaitMs: 'journey.accept.kernel_wait_ms',
  /** TCP_INFO at accept: ms since the last data packet, when request bytes were already waiting. */
  acceptDataWaitMs: 'journey.accept.data_wait_ms',
  acceptBytesWaiting: 'journey.accept.bytes_waiting',
  tcpRttUs: 'journey.tcp.rtt_us',
  /** Sampled requests or fine mode, TCP_INFO: ms the request's bytes sat in the kernel before the parser reached them. */
  readKernelWaitMs: 'journey.read.kernel_wait_ms',
  tlsResumed: 'tls.resumed',
  tlsProtocol: 'tls.protocol.version',
  tlsCipher: 'tls.cipher',
  tlsAlpn: 'tls.next_protocol',
  tlsSni: 'tls.server.name',
  tlsFailure: 'journey.tls.failure_reason',
  contentType: 'journey.decode.content_type',
  contentEncoding: 'journey.decode.content_encoding',
  decodedBytes: 'journey.decode.decoded_bytes',
  /**
   * Traced requests with a body that ended within decode: ms from decode's start until the body had been read
   * off the connection to its last byte. The rest of decode is the server's: decompressing what was left,
   * parsing, validating. A slow uploader shows as a body_received_ms close to the whole stage.
   */
  decodeBodyReceivedMs: 'journey.decode.body_received_ms',
  /**
   * Traced requests with such a body: ms from decode's start until Fastify's content-type parser had made
   * request.body of it (decompressed and parsed). The rest of decode is preValidation hooks and schema
   * validation; absent for a body that failed to parse.
   */
  decodeBodyParsedMs: 'journey.decode.body_parsed_ms',
  /** The handler wrote the response itself (reply.hijack(), reply.raw): its stage includes that writing. */
  handlerWroteResponse: 'journey.handler.wrote_response',
  /**
   * Traced requests: ms of the handler stage that were the handler's synchronous part, from its call until it
   * returned — an async handler returns at its first await, even of a settled promise —, at most the whole
   * stage. The event loop served nothing else meanwhile. Near the whole stage: the handler computed on the loop;
   * near 0: it waited (I/O, timers, a worker thread) — or computed after an await, which runs on the loop too
   * and is not counted.
   */
  handlerSyncMs: 'journey.handler.sync_ms',
  /**
   * Node had not parsed all of the request body when the handler started (a multipart upload the handler
   * reads itself, a body read from request.raw): its arrival is in the handler stage, not in decode. Over
   * HTTP/1 a small body sent with its headers counts too: Fastify can start the handler inside Node's
   * parsing of that read, before the parser reaches the body (docs/stages.md).
   */
  handlerBodyArriving: 'journey.handler.body_arriving',
  serializeSkipped: 'journey.serialize.skipped',
  backpressure: 'journey.write.backpressure',
  /**
   * The response's Content-Encoding (gzip, br, zstd…): a compressor (@fastify/compress) compresses in its
   * onSend hook, after the journey's, or in a stream as the body is written: either way in this stage.
   */
  responseContentEncoding: 'journey.write.content_encoding',
  bytesWritten: 'journey.write.bytes',
  /**
   * Kept requests, HTTP/1.x, responses of 16 KiB or more: the connection's bytes the kernel still held when write ended, not yet
   * acknowledged by the client (Linux SIOCOUTQ: in flight or queued). Write ends when the last byte is handed
   * to the kernel, not when the client has it: this says how much was still on its way.
   */
  writeUnackedBytes: 'journey.write.unacked_bytes',
  aborted: 'journey.aborted',
  /** On aborted requests whose connection closed under them: `client` or `server`, whichever closed it first. */
  abortedBy: 'journey.aborted_by',
  /** Answered or closed before the journey's onRequest hook ran (by Node, or Fastify before its hooks). */
  beforeHooks: 'journey.before_hooks',
  gapHooks: 'journey.gap.hooks_ms',
  /** Only on responses that waited for earlier ones on their connection (HTTP pipelining): ms held back. */
  gapPipelined: 'journey.gap.pipelined_ms',
  /** Only on requests Fastify took an error for: ms from the error to the next stage (its error handler). */
  gapErrorHandler: 'journey.gap.error_handler_ms',
  gapIdle: 'journey.gap.before_request_ms'
} as const

/** Metric names, Prometheus style (unit suffix, _total on counters). */
export const METRIC = {
  stageDuration: 'journey_stage_duration_seconds',
  gapDuration: 'journey_gap_duration_seconds',
  requestDuration: 'http_server_request_duration_seconds',
  activeRequests: 'http_server_active_requests',
  requestBodySize: 'http_server_request_body_size_bytes',
  responseWritten: 'journey_response_written_bytes',
  connectionsAccepted: 'journey_connections_accepted_total',
  connectionsActive: 'journey_connections_active',
  connectionsClosed: 'journey_connections_closed_total',
  connectionsDropped: 'journey_connections_dropped_total',
  connectionDuration: 'journey_connection_duration_seconds',
  connectionRequests: 'journey_connection_requests',
  connectionErrors: 'journey_connection_errors_total',
  tlsHandshakeDuration: 'journey_tls_handshake_duration_seconds',
  tlsHandshakeFailures: 'journey_tls_handshake_failures_total',
  acceptQueueLength: 'journey_accept_queue_length',
  acceptQueueCapacity: 'journey_accept_queue_capacity',
  acceptQueuePeak: 'journey_accept_queue_peak',
  listenOverflows: 'journey_listen_overflows_total',
  listenDrops: 'journey_listen_drops_total',
  acceptKernelWait: 'journey_accept_kernel_wait_seconds',
  readKernelWait: 'journey_read_kernel_wait_seconds',
  tracesRateLimited: 'journey_traces_rate_limited_total'
} as const

/**
 * The export pipelines' metrics — countedBatchProcessor's (span-pipeline.ts) and countedMetricExporter's
 * (metric-pushes.ts) — in the registry each is given. Apart from METRIC: they belong to those, not to a
 * journey, so createJourney neither refuses a registry that has them nor takes them out when it closes.
 */
export const EXPORT_METRIC = {
  spansDropped: 'journey_spans_dropped_total',
  spansExported: 'journey_spans_exported_total',
  spansPending: 'journey_spans_pending',
  spansReserved: 'journey_spans_reserved',
  metricPushes: 'journey_metric_pushes_total'
} as const

/**
 * Histogram buckets for stages: most stages take microseconds, a blocked handler seconds. The five below
 * 10 µs are there because read, parse, decode, serialize and a light handler take 0.1–3 µs: with 10 µs as the
 * first bucket, `histogram_quantile` put every one of them at p50 5.00 µs and p99 9.90 µs (a real Prometheus,
 * the journey page reading 0.06–1.25 µs at p50 in the same minute), so the dashboards could not tell them apart.
 */
export const STAGE_BUCKETS = [
  0.00000025, 0.0000005, 0.000001, 0.0000025, 0.000005,
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]
/**
 * The stable HTTP semantic conventions' advised buckets for http.server.request.duration (so queries written
 * for them still find their `le` values), plus nine below their first, 5 ms: requests here take well under a
 * millisecond, and with the advised buckets alone `histogram_quantile` put every one of them at p50 2.5 ms
 * and p99 4.95 ms (seen with a real Prometheus, true mean 0.7 ms). A hot keep-alive `GET /` takes ≈ 10 µs
 * of server time: with 0.1 ms as the first bucket it still read p50 50 µs, p99 99 µs (the journey page:
 * 10 and 20 µs), hence the four from 5 µs.
 */
export const HTTP_DURATION_BUCKETS = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
export const SIZE_BUCKETS = [0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216]
/**
 * TCP_INFO ages come in jiffies (4 ms at HZ=250): finer buckets would only count rounding. 0 (within the
 * same jiffy) has a bucket of its own: without it an idle server's p99 read an interpolated 3.96 ms.
 */
export const KERNEL_WAIT_BUCKETS = [0, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 5]
/** Steps of 2–2.5× like the stages' (a factor of 10 between 1 and 10 ms made a 2 ms connection's p50 read ≈ 5 ms). */
export const CONNECTION_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800]
/**
 * Whole numbers: read them as bands (bucket differences), not quantiles, which Prometheus interpolates inside
 * a bucket (every connection carrying exactly one request would read p50 = 0.5). 0: closed without a request.
 */
export const REQUESTS_PER_CONNECTION_BUCKETS = [0, 1, 2, 5, 10, 50, 100, 500, 1000, 10000]

/** Route label for requests no route matched: one value, so random URLs cannot grow series. */
export const UNMATCHED_ROUTE = '(unmatched)'
