// The Grafana dashboards, as data. `npm run dashboards` writes them to grafana/dashboards/*.json (committed,
// provisioned by grafana/provisioning/dashboards/) and test/stack checks the files match this source and
// evaluates every query against a real Prometheus.
//
// Generated rather than hand-edited so that stage names, colours and metric names come from the one list in
// src/journey/stages.ts, and so that every panel gets a unit and a description by construction.
import { EXPORT_METRIC, GAP_COLOR, GAP_MEANING, gapLabel, METRIC, SERVER_GAPS, REQUESTS_PER_CONNECTION_BUCKETS, STAGE_COLORS, STAGE_MEANING, STAGES } from '../src/journey/stages.ts'

export const PROMETHEUS = { type: 'prometheus', uid: 'prometheus' } as const
export const JAEGER = { type: 'jaeger', uid: 'jaeger' } as const

interface Target { refId: string, expr: string, legendFormat?: string, instant?: boolean, format?: 'table' | 'heatmap' | 'time_series', exemplar?: boolean }
interface GridPos { h: number, w: number, x: number, y: number }
export interface Panel {
  id: number
  type: string
  title: string
  description: string
  gridPos: GridPos
  datasource?: typeof PROMETHEUS
  targets?: Target[]
  fieldConfig?: unknown
  options?: unknown
  repeat?: string
  collapsed?: boolean
  panels?: Panel[]
  transformations?: unknown[]
}
export interface Dashboard { uid: string, title: string, panels: Panel[], [k: string]: unknown }

// Selectors every query carries, so the instance and route variables filter every panel.
const SEL = 'instance=~"$instance"'
const ROUTE = 'route=~"$route"'
const HTTP_ROUTE = 'http_route=~"$route"'
const RATE = '$__rate_interval'

/** Lays panels out left to right, wrapping at Grafana's 24 columns. */
class Layout {
  private x = 0
  private y = 0
  private rowHeight = 0
  private id = 1
  nextId (): number { return this.id++ }
  place (w: number, h: number): GridPos {
    if (this.x + w > 24) { this.x = 0; this.y += this.rowHeight; this.rowHeight = 0 }
    const pos = { h, w, x: this.x, y: this.y }
    this.x += w
    this.rowHeight = Math.max(this.rowHeight, h)
    return pos
  }
  row (): GridPos {
    if (this.x > 0) { this.x = 0; this.y += this.rowHeight; this.rowHeight = 0 }
    const pos = { h: 1, w: 24, x: 0, y: this.y }
    this.y += 1
    return pos
  }
}

const refIds = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
function targets (list: Array<Omit<Target, 'refId'>>): Target[] {
  return list.map((t, i) => ({ refId: refIds[i]!, ...t }))
}

function timeseries (l: Layout, w: number, title: string, description: string, unit: string, list: Array<Omit<Target, 'refId'>>, opts: { stack?: 'normal' | 'percent', overrides?: unknown[], min?: number } = {}): Panel {
  return {
    id: l.nextId(),
    type: 'timeseries',
    title,
    description,
    gridPos: l.place(w, 8),
    datasource: PROMETHEUS,
    targets: targets(list),
    fieldConfig: {
      defaults: {
        unit,
        ...(opts.min === undefined ? {} : { min: opts.min }),
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: opts.stack === undefined ? 10 : 60,
          showPoints: 'never',
          stacking: { mode: opts.stack ?? 'none', group: 'A' }
        }
      },
      overrides: opts.overrides ?? []
    },
    options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } }
  }
}

/** Colour each stage's series as the built-in page does, so the two views read alike. */
function stageColourOverrides (): unknown[] {
  const colour = (name: string, fixedColor: string): unknown => ({
    matcher: { id: 'byName', options: name },
    properties: [{ id: 'color', value: { mode: 'fixed', fixedColor } }]
  })
  return [...STAGES.map(stage => colour(stage, STAGE_COLORS[stage])), ...SERVER_GAPS.map(g => colour(gapLabel(g), GAP_COLOR))]
}

function row (l: Layout, title: string, repeat?: string): Panel {
  return { id: l.nextId(), type: 'row', title, description: '', gridPos: l.row(), collapsed: false, panels: [], ...(repeat === undefined ? {} : { repeat }) }
}

function quantiles (metric: string, filters: string, by = '', qs = [0.5, 0.95, 0.99]): Array<Omit<Target, 'refId'>> {
  const group = by === '' ? 'le' : `${by}, le`
  return qs.map(q => ({
    expr: `histogram_quantile(${q}, sum by (${group}) (rate(${metric}_bucket{${filters}}[${RATE}])))`,
    legendFormat: `p${q * 100}${by === '' ? '' : ` {{${by}}}`}`,
    exemplar: true
  }))
}

/** One series per band of whole numbers between consecutive bucket bounds: none, 1, 2, 3–5, … and the rest. */
function requestsPerConnectionBands (): Array<Omit<Target, 'refId'>> {
  const bucket = (le: string): string => `sum(rate(${METRIC.connectionRequests}_bucket{${SEL},le="${le}"}[${RATE}]))`
  const bounds = REQUESTS_PER_CONNECTION_BUCKETS
  return [...bounds, Infinity].map((hi, i) => {
    const lo = i === 0 ? undefined : bounds[i - 1]!
    const le = hi === Infinity ? '+Inf' : String(hi)
    if (lo === undefined) return { expr: bucket(le), legendFormat: hi === 0 ? 'none' : `≤ ${hi}` }
    const legendFormat = hi === Infinity ? `> ${lo}` : hi === lo + 1 ? String(hi) : `${lo + 1}–${hi}`
    return { expr: `${bucket(le)} - ${bucket(String(lo))}`, legendFormat }
  })
}

function variable (name: string, label: string, query: string, description: string): unknown {
  return {
    name,
    label,
    description,
    type: 'query',
    datasource: PROMETHEUS,
    query: { query, refId: `${name}-values` },
    definition: query,
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: '.*',
    current: { text: ['All'], value: ['$__all'] },
    sort: 1
  }
}

function dashboard (uid: string, title: string, description: string, panels: Panel[], variables: unknown[]): Dashboard {
  return {
    uid,
    title,
    description,
    tags: ['request-journey'],
    timezone: 'browser',
    schemaVersion: 41,
    version: 1,
    editable: true,
    graphTooltip: 1, // shared crosshair: a moment on one panel lines up with the same moment on the others
    refresh: '10s',
    time: { from: 'now-15m', to: 'now' },
    templating: { list: variables },
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard'
      }, {
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        iconColor: 'orange',
        name: 'Experiments',
        target: { type: 'tags', tags: ['experiment'], limit: 100, matchAny: true }
      }]
    },
    links: [{ title: 'Other journey dashboards', type: 'dashboards', tags: ['request-journey'], asDropdown: false }],
    panels
  }
}

// What the server-side gaps mean, for the panels that show them.
const SERVER_GAP_MEANINGS = SERVER_GAPS.map(g => `**${gapLabel(g)}**: ${GAP_MEANING[g]}`).join('\n\n')

const instanceVar = variable('instance', 'Instance', `label_values(${METRIC.stageDuration}_count, instance)`, 'Scrape target (one per app replica).')

export function requestJourneyDashboard (): Dashboard {
  const l = new Layout()
  const stageSel = `${SEL}, ${ROUTE}`
  // The server's gaps: before_request is the client's think time, which would drown the stages.
  const gapSel = `${SEL}, ${ROUTE}, gap=~"${SERVER_GAPS.join('|')}"`
  // Everything the server spent on its requests: every stage plus its gaps (`or vector(0)`: an app from before
  // the gap histogram has none, and the stages' shares must still show).
  const serverTime = `scalar(sum(rate(${METRIC.stageDuration}_sum{${stageSel}}[${RATE}])) + (sum(rate(${METRIC.gapDuration}_sum{${gapSel}}[${RATE}])) or vector(0)))`
  const panels: Panel[] = [
    row(l, 'The whole request'),
    timeseries(l, 6, 'Requests per second by status class',
      'Completed requests per second, split by status class (2xx, 4xx, 5xx); `aborted` (error_type) counts requests cut off before the response finished, whatever status they had sent.',
      'reqps', [{
        expr: `sum by (status_class) (label_replace(label_replace(rate(${METRIC.requestDuration}_count{${SEL}, ${HTTP_ROUTE}}[${RATE}]), "status_class", "\${1}xx", "http_response_status_code", "([0-9]).*"), "status_class", "aborted", "error_type", "aborted"))`,
        legendFormat: '{{status_class}}'
      }], { stack: 'normal', min: 0 }),
    timeseries(l, 6, 'Errors per second by status class',
      'Requests answered 4xx or 5xx, or aborted: cut off before the response finished, by the client leaving or by the server closing the connection (a timeout, shutdown); a trace\'s journey.aborted_by and the log line say which. Connection-level errors that never became a request (malformed request line, header timeout) are on the Connections & kernel dashboard.',
      'reqps', [{
        // An aborted request may carry the status it sent (a download cut off after its 200): it counts as
        // aborted only, as on the panel above.
        expr: `sum by (status_class) (label_replace(rate(${METRIC.requestDuration}_count{${SEL}, ${HTTP_ROUTE}, http_response_status_code=~"[45]..", error_type!="aborted"}[${RATE}]), "status_class", "\${1}xx", "http_response_status_code", "([0-9]).*"))` +
          ` or sum by (status_class) (label_replace(rate(${METRIC.requestDuration}_count{${SEL}, ${HTTP_ROUTE}, error_type="aborted"}[${RATE}]), "status_class", "aborted", "error_type", ".*"))`,
        legendFormat: '{{status_class}}'
      }], { stack: 'normal', min: 0 }),
    timeseries(l, 6, 'Request duration p50 / p95 / p99',
      'From the first request byte the HTTP parser saw to the last response byte handed to the kernel (http.server.request.duration). Excludes accept and the TLS handshake, which belong to the connection. Dots are exemplars: click one to open that request\'s waterfall in Jaeger.',
      's', quantiles(METRIC.requestDuration, `${SEL}, ${HTTP_ROUTE}`), { min: 0 }),
    timeseries(l, 6, 'Request duration p50 / p99 by protocol',
      'The same duration for each HTTP version the requests came in (network_protocol_version: 1.0, 1.1, 2), so HTTP/2 and HTTP/1.1 clients of one port (HTTPS_HTTP2=true in the demo) can be compared. An HTTP/2 request\'s duration starts at parse: Node reads its frames natively, so there is no read stage to start from (docs/stages.md, HTTP/2).',
      's', quantiles(METRIC.requestDuration, `${SEL}, ${HTTP_ROUTE}`, 'network_protocol_version', [0.5, 0.99]), { min: 0 }),
    timeseries(l, 12, 'Where the time goes: share of stage time',
      'Each stage\'s share of the server\'s time over the window: sum of stage durations, plus the time between stages, over the sum of all of them. A stage that grows here is the bottleneck. Accept and TLS are counted on the first request of each connection; the client\'s think time before its first byte is not the server\'s and is left out.\n\n' + SERVER_GAP_MEANINGS,
      'percentunit', [{
        expr: `sum by (stage) (rate(${METRIC.stageDuration}_sum{${stageSel}}[${RATE}])) / ${serverTime}`,
        legendFormat: '{{stage}}'
      }, {
        expr: `label_replace(sum by (gap) (rate(${METRIC.gapDuration}_sum{${gapSel}}[${RATE}])), "stage", "gap: $1", "gap", "(.*)") / ${serverTime}`,
        legendFormat: '{{stage}}'
      }], { stack: 'normal', overrides: stageColourOverrides(), min: 0 }),
    timeseries(l, 12, 'p99 of every stage',
      'The 99th percentile of each stage, side by side, and of the server\'s time between stages (a slow auth hook of yours shows as `gap: hooks`). Log scale would hide nothing here: stages range from microseconds to seconds. Dots are exemplars linking to Jaeger.\n\n' + SERVER_GAP_MEANINGS,
      's', [{
        expr: `histogram_quantile(0.99, sum by (stage, le) (rate(${METRIC.stageDuration}_bucket{${stageSel}}[${RATE}])))`,
        legendFormat: '{{stage}}',
        exemplar: true
      }, {
        expr: `histogram_quantile(0.99, sum by (gap, le) (rate(${METRIC.gapDuration}_bucket{${gapSel}}[${RATE}])))`,
        legendFormat: 'gap: {{gap}}',
        exemplar: true
      }], { overrides: stageColourOverrides(), min: 0 }),
    timeseries(l, 12, 'Bytes per second: request bodies in, responses out',
      'What the decode and write stages carry. Request bodies: on the wire, before decompression (Content-Length, or the bytes of a body sent without one: HTTP/1.1 chunked, an HTTP/2 stream without content-length). Responses: status line, headers and body as handed to the socket, after any compression and before TLS (HTTP/1.1 only: an HTTP/2 stream\'s bytes are not measured).',
      'Bps', [{
        expr: `sum(rate(${METRIC.requestBodySize}_sum{${SEL}, ${HTTP_ROUTE}}[${RATE}]))`,
        legendFormat: 'request bodies'
      }, {
        expr: `sum(rate(${METRIC.responseWritten}_sum{${SEL}, ${HTTP_ROUTE}}[${RATE}]))`,
        legendFormat: 'responses'
      }], { min: 0 }),
    timeseries(l, 12, 'Request body and response size p99 by route',
      'The 99th percentile of each route\'s request bodies (requests without a body are not counted) and responses, in the same units as the panel beside it. A decode or write stage that grows with these is moving bytes; one that grows without them is waiting or computing (compressing responses: a longer write for fewer bytes).',
      'bytes', [{
        expr: `histogram_quantile(0.99, sum by (http_route, le) (rate(${METRIC.requestBodySize}_bucket{${SEL}, ${HTTP_ROUTE}}[${RATE}])))`,
        legendFormat: '{{http_route}} request body'
      }, {
        expr: `histogram_quantile(0.99, sum by (http_route, le) (rate(${METRIC.responseWritten}_bucket{${SEL}, ${HTTP_ROUTE}}[${RATE}])))`,
        legendFormat: '{{http_route}} response'
      }], { min: 0 }),
    {
      id: l.nextId(),
      type: 'table',
      title: 'Slowest routes (p99 over the last 5 minutes)',
      description: 'Route templates (never raw URLs) ranked by p99 request duration, with their request rate. `(unmatched)` collects every request that matched no route.',
      gridPos: l.place(14, 8),
      datasource: PROMETHEUS,
      targets: targets([
        { expr: `topk(10, histogram_quantile(0.99, sum by (http_route, le) (rate(${METRIC.requestDuration}_bucket{${SEL}, ${HTTP_ROUTE}}[5m]))))`, instant: true, format: 'table' },
        { expr: `sum by (http_route) (rate(${METRIC.requestDuration}_count{${SEL}, ${HTTP_ROUTE}}[5m]))`, instant: true, format: 'table' }
      ]),
      fieldConfig: {
        defaults: { unit: 's' },
        overrides: [
          { matcher: { id: 'byName', options: 'Value #A' }, properties: [{ id: 'displayName', value: 'p99' }, { id: 'unit', value: 's' }] },
          { matcher: { id: 'byName', options: 'Value #B' }, properties: [{ id: 'displayName', value: 'requests/s' }, { id: 'unit', value: 'reqps' }] }
        ]
      },
      transformations: [
        { id: 'merge', options: {} },
        { id: 'organize', options: { excludeByName: { Time: true } } },
        { id: 'sortBy', options: { sort: [{ field: 'p99', desc: true }] } }
      ],
      options: { showHeader: true }
    },
    {
      id: l.nextId(),
      type: 'table',
      title: 'Alerts pending or firing',
      description: 'The alerting rules shipped in deploy/prometheus/alerts.yml, as Prometheus evaluates them now (its /alerts page, http://localhost:9090/alerts, has each one\'s summary and description). `pending`: the condition holds, not yet for as long as the rule\'s `for`. Empty when nothing is wrong. JourneyStageDominates names the route and stage that take most of the time; the others are about connections, the kernel, the event loop and the span export pipeline (Connections & kernel dashboard).',
      gridPos: l.place(10, 8),
      datasource: PROMETHEUS,
      targets: targets([{ expr: `ALERTS{${SEL}}`, instant: true, format: 'table' }]),
      fieldConfig: { defaults: { unit: 'none' }, overrides: [] },
      transformations: [
        { id: 'organize', options: { excludeByName: { Time: true, Value: true, __name__: true, job: true }, indexByName: { alertname: 0, alertstate: 1, severity: 2 } } },
        { id: 'sortBy', options: { sort: [{ field: 'alertstate', desc: false }] } }
      ],
      options: { showHeader: true }
    },
    row(l, 'Stage: $stage', 'stage'),
    timeseries(l, 16, '$stage p50 / p95 / p99',
      STAGES.map(s => `**${s}**: ${STAGE_MEANING[s]}`).join('\n\n') + '\n\nDots are exemplars: click one to open that request in Jaeger.',
      's', quantiles(METRIC.stageDuration, `${stageSel}, stage=~"$stage"`), { min: 0 }),
    {
      id: l.nextId(),
      type: 'heatmap',
      title: '$stage distribution',
      description: 'How many requests fell in each latency bucket over time: a second band appearing means a second population (for example cache hits and misses in handler, or compressed bodies in decode).',
      gridPos: l.place(8, 8),
      datasource: PROMETHEUS,
      targets: targets([{ expr: `sum by (le) (rate(${METRIC.stageDuration}_bucket{${stageSel}, stage=~"$stage"}[${RATE}]))`, legendFormat: '{{le}}', format: 'heatmap' }]),
      fieldConfig: { defaults: { unit: 's' }, overrides: [] },
      options: {
        calculate: false,
        yAxis: { unit: 's', axisPlacement: 'left' },
        color: { mode: 'scheme', scheme: 'Oranges', exponent: 0.5, fill: 'dark-orange', scale: 'exponential', steps: 64 },
        cellGap: 1,
        tooltip: { mode: 'single', yHistogram: true },
        legend: { show: true }
      }
    }
  ]
  return dashboard('request-journey', 'Request journey',
    'Where the time of a request goes: accept → TLS → read → parse → decode → handler → serialize → write. docs/stages.md defines each stage.',
    panels, [
      instanceVar,
      variable('route', 'Route', `label_values(${METRIC.stageDuration}_count{${SEL}}, route)`, 'Route template; (unmatched) is every URL no route matched.'),
      variable('stage', 'Stage', `label_values(${METRIC.stageDuration}_count{${SEL}}, stage)`, 'Stages measured (decrypt appears only with JOURNEY_PRECISION=fine).')
    ])
}

export function connectionsDashboard (): Dashboard {
  const l = new Layout()
  const panels: Panel[] = [
    row(l, 'Connections'),
    timeseries(l, 6, 'Accepted connections per second',
      'Connections that reached user space (the server\'s \'connection\' event), per listener. A connection storm shows here; a refusal by the kernel does not — see Listen overflows. "dropped": connections Node accepted and closed at once, unserved, because the listener had its maxConnections open (MAX_CONNECTIONS; the server\'s \'drop\' event): clients saw their connection reset or closed without an answer.',
      'cps', [
        { expr: `sum by (listener) (rate(${METRIC.connectionsAccepted}{${SEL}}[${RATE}]))`, legendFormat: '{{listener}}' },
        { expr: `sum by (listener) (rate(${METRIC.connectionsDropped}{${SEL}}[${RATE}]))`, legendFormat: '{{listener}} dropped (maxConnections)' }
      ], { min: 0 }),
    timeseries(l, 6, 'Accepted connections per second per worker',
      'With a multi-process ACCEPT_STRATEGY (cluster-rr, cluster-shared, reuseport) each worker counts the connections it accepted: how evenly the strategy spreads them. One line without workers.',
      'cps', [{ expr: `sum by (worker) (rate(${METRIC.connectionsAccepted}{${SEL}}[${RATE}]))`, legendFormat: 'worker {{worker}}' }], { min: 0 }),
    timeseries(l, 6, 'Open connections',
      'Connections currently open per listener, idle keep-alive ones included.',
      'short', [{ expr: `sum by (listener) (${METRIC.connectionsActive}{${SEL}})`, legendFormat: '{{listener}}' }], { min: 0 }),
    timeseries(l, 6, 'Requests in flight',
      'Requests the server has taken and not yet answered (their last byte not yet handed to the kernel), by scheme, at each scrape: the server\'s concurrency. By Little\'s law it is the request rate times the mean request duration, so it climbs when requests get slower at the same rate. Far below Open connections: most keep-alive connections sit idle between requests.',
      'short', [{ expr: `sum by (url_scheme) (${METRIC.activeRequests}{${SEL}})`, legendFormat: '{{url_scheme}}' }], { min: 0 }),
    timeseries(l, 8, 'Connection errors by reason',
      'Errors that closed a connection: malformed request (bad_request), header overflow, an HTTP/2 preface on an HTTP/1.1-only port (http2), header or request timeout, client reset, client closed mid-request (incomplete_request); on HTTP/2 servers a protocol error (http2_protocol, e.g. a header block past maxHeaderListSize) or no protocol offered (unknown_protocol); on TLS a bad record after the handshake (tls_error) or renegotiating past Node\'s limit (tls_renegotiation). Failed handshakes are in the TLS row; connections dropped at maxConnections in Accepted connections. docs/stages.md lists them all.',
      'cps', [{ expr: `sum by (reason) (rate(${METRIC.connectionErrors}{${SEL}}[${RATE}]))`, legendFormat: '{{reason}}' }], { min: 0 }),
    timeseries(l, 12, 'Connection duration p50 / p99',
      'Life of a connection from accept to close: short for one request per connection, long for keep-alive.',
      's', quantiles(METRIC.connectionDuration, SEL, 'listener').filter(t => !t.legendFormat!.startsWith('p95')), { min: 0 }),
    timeseries(l, 12, 'Connections closed per second, by requests carried',
      'Each connection, when it closes, counted by how many requests it carried. "1" means no keep-alive: every request paid accept (and TLS) again; "none" closed without a request (a failed TLS handshake, a malformed first request, a browser\'s unused preconnect, a probe). Bands of the histogram\'s buckets, not quantiles: Prometheus interpolates inside a bucket, so connections carrying exactly one request each would read p50 = 0.5.',
      'cps', requestsPerConnectionBands(), { stack: 'normal', min: 0 }),
    timeseries(l, 12, 'Connections closed per second, by who ended them',
      'The side that ended each connection first: the client (its FIN, or its reset) or the server — `connection: close` after a response (also when the client\'s request asked for it: HTTP/1.0, its own `Connection: close`), the keep-alive or a request timeout, an error, shutdown. Fastify answers a body it could not parse (not JSON, too large, a bad encoding) with `connection: close`: server closes climbing beside 400s are clients sending bad bodies, each then paying a new connection and, on HTTPS, a handshake (the `errors` experiment).',
      'cps', [{ expr: `sum by (by, listener) (rate(${METRIC.connectionsClosed}{${SEL}}[${RATE}]))`, legendFormat: '{{by}} {{listener}}' }], { stack: 'normal', min: 0 }),
    row(l, 'The kernel'),
    timeseries(l, 12, 'Accept queue: waiting connections and capacity',
      'Connections the kernel has handshaken and queued for accept() on each listener (Linux only), against the queue size min(backlog, net.core.somaxconn). "At scrape" is read when Prometheus scrapes, by the event loop, so it shows sustained pressure only; "deepest in the last 15 s" comes from a worker thread sampling every JOURNEY_KERNEL_SAMPLE_MS (on in the compose stack), so it also catches queues that build while the event loop is blocked. With the TCP_INFO addon both are read from the listening socket itself; without it from the LISTEN row of /proc/net/tcp. Per worker: reuseport workers have a queue each, cluster-shared workers each read the one queue they share (one queue, not a sum), and under cluster-rr the primary accepts, so no worker has a queue to show.',
      'short', [
        // By worker too: reuseport workers have a queue each; cluster-shared workers report the same shared one.
        { expr: `max by (listener, worker) (${METRIC.acceptQueueLength}{${SEL}})`, legendFormat: 'waiting at scrape {{listener}} {{worker}}' },
        { expr: `max by (listener, worker) (${METRIC.acceptQueuePeak}{${SEL}})`, legendFormat: 'deepest in the last 15 s {{listener}} {{worker}}' },
        { expr: `max by (listener) (${METRIC.acceptQueueCapacity}{${SEL}})`, legendFormat: 'capacity {{listener}}' }
      ], { min: 0 }),
    timeseries(l, 12, 'Wait in the kernel before accept and before read, p99',
      'Linux TCP_INFO (the TCP_INFO addon). Accept: how long each new connection had been waiting in the kernel — handshake done, or request bytes already there — before the server took it. Read: how long a request\'s bytes sat in the receive queue before the server read them (sampled requests only; every request with JOURNEY_PRECISION=fine). This is where time goes when the event loop is blocked. Resolution one jiffy (4 ms at HZ=250).',
      's', [
        { expr: `histogram_quantile(0.99, sum by (listener, le) (rate(${METRIC.acceptKernelWait}_bucket{${SEL}}[${RATE}])))`, legendFormat: 'before accept p99 {{listener}}' },
        { expr: `histogram_quantile(0.99, sum by (listener, le) (rate(${METRIC.readKernelWait}_bucket{${SEL}}[${RATE}])))`, legendFormat: 'before read p99 {{listener}}' }
      ], { min: 0 }),
    timeseries(l, 12, 'Listen overflows and drops',
      'TcpExt ListenOverflows (a completed handshake found the accept queue full) and ListenDrops, per second. Packet counts for the whole network namespace (each container has its own; processes sharing a host network report the same number), retransmissions counted again.',
      // max, not sum: every worker of a cluster reads the same namespace counter (a series each, by `worker`).
      'pps', [
        { expr: `max by (instance) (rate(${METRIC.listenOverflows}{${SEL}}[${RATE}]))`, legendFormat: 'overflows {{instance}}' },
        { expr: `max by (instance) (rate(${METRIC.listenDrops}{${SEL}}[${RATE}]))`, legendFormat: 'drops {{instance}}' }
      ], { min: 0 }),
    row(l, 'TLS'),
    timeseries(l, 6, 'TLS handshakes per second by protocol and resumption',
      'Completed handshakes: resumed=true reused a session (no certificate exchange, no key agreement signature).',
      'ops', [{ expr: `sum by (protocol, resumed) (rate(${METRIC.tlsHandshakeDuration}_count{${SEL}}[${RATE}]))`, legendFormat: '{{protocol}} resumed={{resumed}}' }], { min: 0 }),
    timeseries(l, 6, 'TLS handshake p50 / p99',
      'Accepted TCP connection to secure connection established, as the server sees it: its own work and the waits for the client\'s ClientHello and, a round trip after its reply, the client\'s Finished (client work included).',
      's', quantiles(METRIC.tlsHandshakeDuration, SEL).filter(t => !t.legendFormat!.startsWith('p95')), { min: 0 }),
    timeseries(l, 6, 'TLS handshake failures by reason',
      'Handshakes that failed: clients rejecting the certificate (tlsv1_alert_unknown_ca, ssl_tls_alert_certificate_unknown: not trusted; ssl_tls_alert_certificate_expired; ssl_tls_alert_bad_certificate: not yet valid — the JourneyTlsCertificateRejected alert), plain HTTP on the HTTPS port, unsupported protocol versions, no cipher in common, garbage, clients that never finished (handshake timeout) or left (client_reset).',
      'ops', [{ expr: `sum by (reason) (rate(${METRIC.tlsHandshakeFailures}{${SEL}}[${RATE}]))`, legendFormat: '{{reason}}' }], { min: 0 }),
    timeseries(l, 6, 'TLS certificate expires in',
      'Time left until the certificate the HTTPS listener serves expires (its notAfter, read when the app started: it reads TLS_CERT once), per replica. Under 14 days the JourneyTlsCertificateExpiresSoon alert fires; past 0, clients refuse it (TLS handshake failures by reason). The development certificate lives 30 days from start. An app of your own reports this only if it sets the gauge (the plugin does not see certificates).',
      's', [{ expr: `min by (instance) (journey_tls_certificate_expiry_timestamp_seconds{${SEL}}) - time()`, legendFormat: '{{instance}}' }]),
    row(l, 'Runtime'),
    timeseries(l, 6, 'Event-loop delay',
      'How late timers fire (perf_hooks monitorEventLoopDelay), since the previous scrape: prom-client resets it at every scrape. While the loop is blocked nothing is accepted, read or written: new connections and unread request bytes wait in the kernel (the panel “Wait in the kernel before accept and before read”) before any of their stages starts; a request already under way waits in the stage it was in.',
      's', [
        { expr: `max by (instance) (nodejs_eventloop_lag_p99_seconds{${SEL}})`, legendFormat: 'p99 {{instance}}' },
        { expr: `max by (instance) (nodejs_eventloop_lag_p50_seconds{${SEL}})`, legendFormat: 'p50 {{instance}}' }
      ], { min: 0 }),
    timeseries(l, 6, 'Time in garbage collection',
      'Seconds per second spent in GC pauses, by kind: 0.05 means 5 % of wall time.',
      'percentunit', [{ expr: `sum by (kind) (rate(nodejs_gc_duration_seconds_sum{${SEL}}[${RATE}]))`, legendFormat: '{{kind}}' }], { stack: 'normal', min: 0 }),
    timeseries(l, 6, 'Memory',
      'V8 heap used and process resident memory per instance.',
      'bytes', [
        { expr: `sum by (instance) (nodejs_heap_size_used_bytes{${SEL}})`, legendFormat: 'heap used {{instance}}' },
        { expr: `sum by (instance) (process_resident_memory_bytes{${SEL}})`, legendFormat: 'RSS {{instance}}' }
      ], { min: 0 }),
    // Per process (a cluster's workers have a limit each): the limit is where connections start to vanish.
    timeseries(l, 6, 'File descriptors',
      'Open file descriptors (sockets among them: one per connection, two per upstream call) against the process\'s limit (ulimit -n). At the limit, libuv accepts each new connection and closes it at once (its EMFILE trick), before Node sees it: such connections are in no metric here — not accepted, not dropped, no error — and their clients see it closed at once, unanswered. The JourneyFileDescriptorsNearLimit alert fires at 90 %.',
      'short', [
        { expr: `max by (instance, worker) (process_open_fds{${SEL}})`, legendFormat: 'open {{instance}} {{worker}}' },
        { expr: `max by (instance, worker) (process_max_fds{${SEL}})`, legendFormat: 'limit {{instance}} {{worker}}' }
      ], { min: 0 }),
    timeseries(l, 12, 'Spans exported per second',
      'Spans handed to the OTLP exporter, by result. Failures mean the collector is down or slow; serving is not affected. Below them, requests per second that a tail rule (slow, error) would have traced but for its limit (JOURNEY_KEEP_PER_SECOND): a steady rate there is a storm of failing or slow requests, of which the limit\'s worth a second are traced.',
      'ops', [
        { expr: `sum by (result) (rate(${EXPORT_METRIC.spansExported}{${SEL}}[${RATE}]))`, legendFormat: '{{result}}' },
        { expr: `sum by (rule) (rate(${METRIC.tracesRateLimited}{${SEL}}[${RATE}]))`, legendFormat: 'requests over the {{rule}} rule\'s limit' }
      ], { min: 0 }),
    timeseries(l, 12, 'Spans dropped and pending',
      'Spans dropped because the bounded export queue was full, spans waiting in it, and room in it held for sampled requests still running (pending + held never exceed its size). Drops cost no requests; they are the price of a slow collector.',
      'short', [
        { expr: `sum (rate(${EXPORT_METRIC.spansDropped}{${SEL}}[${RATE}]))`, legendFormat: 'dropped/s' },
        { expr: `sum (${EXPORT_METRIC.spansPending}{${SEL}})`, legendFormat: 'pending' },
        { expr: `sum (${EXPORT_METRIC.spansReserved}{${SEL}})`, legendFormat: 'held for running requests' }
      ], { min: 0 })
  ]
  return dashboard('connections-kernel', 'Connections & kernel',
    'Connections, TLS handshakes, the kernel\'s accept queue and the Node.js runtime that serves them.',
    panels, [instanceVar])
}

export const DASHBOARDS = { 'request-journey.json': requestJourneyDashboard, 'connections-kernel.json': connectionsDashboard }

/** Every PromQL expression in a dashboard (targets of nested panels too), with the panel it belongs to. */
export function queriesOf (d: Dashboard): Array<{ panel: string, expr: string, instant: boolean, legend: string }> {
  const out: Array<{ panel: string, expr: string, instant: boolean, legend: string }> = []
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ panel: p.title, expr: t.expr, instant: t.instant === true, legend: t.legendFormat ?? '' })
      walk(p.panels ?? [])
    }
  }
  walk(d.panels)
  return out
}
