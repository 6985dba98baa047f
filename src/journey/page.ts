// The built-in journey page: recent requests as waterfalls, stage percentiles over the last minute and
// connection counts, served from the admin listener. The server renders every fragment (so the page works
// as a static snapshot with JavaScript off); with JavaScript, one server-sent-events stream pushes the same
// fragments once a second. No front-end framework: a table, some divs and twenty lines of script.
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { RecentConsumer, RecentRequest, Snapshot, StageStats } from './consume-recent.ts'
import { GAP_COLOR, STAGE_COLORS, STAGES, type Stage } from './stages.ts'

export interface PageOptions {
  recent: RecentConsumer
  /** Jaeger UI base URL (e.g. http://localhost:16686): each traced request links to its trace there. */
  jaegerUrl?: string | undefined
  /** At most this many live pages at once; more get 503 (each costs a timer tick, not a poll). */
  maxClients?: number
  /**
   * A live page with more than this many bytes sent to it still unread (held by Node, past the kernel's
   * buffers) is closed; a browser's EventSource reconnects and carries on. Default 1 MiB.
   */
  maxBufferedBytes?: number
}

const esc = (s: string): string => s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
// Two significant digits below 10 µs: many stages take less than a microsecond, and "0.000" would say none.
const fmt = (ms: number): string => Number.isNaN(ms)
  ? '–'
  : ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms >= 0.01 || ms === 0 ? ms.toFixed(3) : ms.toPrecision(2)

function statusClass (r: RecentRequest): string {
  return r.aborted ? 'aborted' : `${Math.floor(r.status / 100)}xx`
}

/**
 * A connection's first request is drawn from accept, as its trace's root span is; the log line and the
 * request-duration histogram start at its first byte. Said where the two differ, so neither looks wrong.
 * A later request starts at its first byte read: a wait of its bytes in the kernel before that is in no
 * bar, so the time says it — the cell people hover, where the read bar is a sliver.
 */
function durationTitle (r: RecentRequest): string {
  if (!(r.durationMs - r.requestMs >= 0.001)) {
    return r.readKernelWaitMs === undefined || r.readKernelWaitMs === 0
      ? ''
      : ` title="from its first byte read; before that its bytes had waited ≈ ${r.readKernelWaitMs} ms in the kernel's receive queue for the event loop (TCP_INFO, to a jiffy), in no stage"`
  }
  return ` title="${fmt(r.durationMs)} ms from accept (the connection's first request: its accept, its TLS handshake if any, and the wait before its first byte was read${kernelShare(r)}); ${fmt(r.requestMs)} ms from its first byte, as its log line and http_server_request_duration_seconds count it"`
}

const JIFFY_DOUBT_MS = 10

/**
 * How much of a first request's wait before its first byte was the server's: its bytes had arrived and sat in
 * the kernel while the event loop did something else. The read's kernel wait counts from their arrival, which
 * may be before accept (a connection that waited in the accept queue with its request), so only the part
 * after the connection was ready is in this gap: at most all of it.
 */
function kernelShare (r: RecentRequest): string {
  const read = r.stages.findIndex(s => s.stage === 'read')
  // TCP_INFO's ages tick in jiffies (4 ms at HZ=250, 10 at HZ=100): a wait that short cannot be told from a
  // tick between the bytes' arrival and the read, so it splits no gap (the read bar still shows its figure).
  if (r.readKernelWaitMs === undefined || r.readKernelWaitMs < JIFFY_DOUBT_MS || read < 1) return ''
  const ready = r.stages[read - 1]!
  const gapMs = r.stages[read]!.startMs - (ready.startMs + ready.durationMs)
  return r.readKernelWaitMs >= gapMs
    ? ', all of it with its bytes already in the kernel, waiting for the event loop'
    : `, ≈ ${r.readKernelWaitMs} ms of it with its bytes in the kernel waiting for the event loop`
}

/**
 * The kernel's waits, which come before the stages they follow and so are in no bar: from TCP_INFO's packet
 * ages, whole ms counted in jiffies (4 ms at HZ=250), so true to a jiffy and 0 for anything under one.
 */
function kernelNote (waitMs: number | undefined, where: string): string {
  if (waitMs === undefined) return ''
  return waitMs === 0 ? `; before it, under a jiffy ${where} (TCP_INFO)` : `; before it, ≈ ${waitMs} ms ${where} (TCP_INFO, to a jiffy)`
}

/** Whether a streamed response's write waited for its reader: the question a long write stage asks. */
function writeNote (r: RecentRequest): string {
  const streamed = r.backpressure === true
    ? ', streamed: it waited for the client to read (backpressure)'
    : r.backpressure === false ? ', streamed: it never waited for the client' : ''
  // Write ends when the kernel has the last byte, not the client: how much was still on its way.
  const held = r.unackedBytes === undefined ? '' : `; the kernel still held ${fmtBytes(r.unackedBytes)} the client had not acknowledged`
  return streamed + held
}

/** A long handler asks whether it computed on the event loop or waited for something. */
function handlerNote (r: RecentRequest, durationMs: number): string {
  if (r.handlerSyncMs === undefined) return ''
  return r.handlerSyncMs >= durationMs
    ? '; all of it synchronous: the event loop served nothing else meanwhile'
    : `; its synchronous part (until it returned or first awaited) held the event loop for ${fmt(r.handlerSyncMs)} ms`
}

/** A long decode asks whether the body was slow to arrive, slow to parse, or slow to validate. */
function decodeNote (r: RecentRequest): string {
  if (r.bodyReceivedMs === undefined) return ''
  const arrived = `; the body had all arrived after ${fmt(r.bodyReceivedMs)} ms`
  // Parsed implies arrived (the parse mark is only taken once the body has ended); not parsed: the parse failed.
  return r.bodyParsedMs === undefined
    ? `${arrived}, the rest is the server decoding it`
    : `${arrived} and was parsed by ${fmt(r.bodyParsedMs)} ms; the rest is preValidation hooks and schema validation`
}

/** What a stage's bar says besides its length: where in it a long one went, or what came before it unseen. */
function stageNote (r: RecentRequest, stage: Stage, durationMs: number): string {
  switch (stage) {
    case 'accept': return kernelNote(r.acceptKernelWaitMs, 'in the kernel\'s accept queue')
    case 'read': return kernelNote(r.readKernelWaitMs, 'with its bytes in the kernel\'s receive queue')
    case 'decode': return decodeNote(r)
    case 'handler': return handlerNote(r, durationMs)
    case 'write': return writeNote(r)
    default: return ''
  }
}

function fmtBytes (n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`
}

export function renderRow (r: RecentRequest, jaegerUrl?: string): string {
  const total = Math.max(r.durationMs, 1e-6)
  const bars = r.stages.map(s =>
    `<span class="seg" data-stage="${s.stage}" style="left:${(100 * s.startMs / total).toFixed(3)}%;width:${Math.max(0.3, 100 * s.durationMs / total).toFixed(3)}%;background:${STAGE_COLORS[s.stage]}" title="${s.stage} ${fmt(s.durationMs)} ms${stageNote(r, s.stage, s.durationMs)}"></span>`).join('')
  const decode = r.stages.find(s => s.stage === 'decode')
  const handler = r.stages.find(s => s.stage === 'handler')
  const marks = (decode === undefined
    ? ''
    : mark(decode.startMs, r.bodyReceivedMs, 'the body had all arrived', 'decode', total) + mark(decode.startMs, r.bodyParsedMs, 'the body was parsed; validation follows', 'decode', total)) +
    // Only inside the stage: a handler synchronous to its end (most) needs no tick at its edge.
    (handler === undefined || r.handlerSyncMs === undefined || r.handlerSyncMs >= handler.durationMs
      ? ''
      : mark(handler.startMs, r.handlerSyncMs, 'the handler returned (its synchronous part ended); it waited from here', 'handler', total))
  const trace = r.traceId !== undefined && jaegerUrl !== undefined
    ? ` <a href="${esc(jaegerUrl)}/trace/${r.traceId}" target="_blank" rel="noopener">trace</a>`
    : ''
  const time = new Date(r.at).toISOString().slice(11, 23)
  return `<tr class="req" data-id="${r.id}" data-route="${esc(r.route)}" data-status="${statusClass(r)}">` +
    `<td class="t">${time}</td><td${r.http2 ? ' title="HTTP/2: no read stage"' : ''}>${r.scheme}${r.http2 ? ' h2' : ''}</td><td title="${esc(r.method)} ${esc(r.path ?? '')}">${esc(r.method)} ${esc(r.route)}</td>` +
    `<td class="s ${statusClass(r)}"${abortedTitle(r)}>${r.aborted ? `aborted${r.abortedBy === 'server' ? ' by server' : ''}` : r.status}</td><td class="n"${durationTitle(r)}>${fmt(r.durationMs)} ms</td>` +
    `<td class="w"><div class="bar">${bars}${marks}</div></td><td class="c">#${r.connectionId}/${r.requestIndex}${trace}</td></tr>`
}

/**
 * A tick inside a stage's bar — where decode's body arrived or was parsed, where the handler's synchronous part
 * ended —: a long stage's answer, seen without hovering.
 */
function mark (stageStartMs: number, atMs: number | undefined, what: string, stage: string, total: number): string {
  return atMs === undefined ? '' : `<span class="mark" style="left:${(100 * (stageStartMs + atMs) / total).toFixed(3)}%" title="${what}, ${fmt(atMs)} ms into ${stage}"></span>`
}

/** Who cut an aborted request off, and the status it had sent, if one went out (as its span and metric say). */
function abortedTitle (r: RecentRequest): string {
  if (!r.aborted) return ''
  const parts = [
    r.abortedBy === undefined ? undefined : `the ${r.abortedBy} closed the connection before the response finished`,
    r.status > 0 ? `its ${r.status} had gone out` : undefined
  ].filter(p => p !== undefined)
  return parts.length === 0 ? '' : ` title="${parts.join('; ')}"`
}

function sparkline (values: number[]): string {
  const max = Math.max(...values, 1e-9)
  const pts = values.map((v, i) => `${(i * 100 / (values.length - 1)).toFixed(1)},${(20 - 18 * v / max).toFixed(1)}`).join(' ')
  return `<svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none"><polyline points="${pts}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>`
}

const colourOf = (row: StageStats['stage']): string => row.startsWith('gap: ') ? GAP_COLOR : STAGE_COLORS[row as Stage]

function renderStages (stages: StageStats[]): string {
  if (stages.length === 0) return '<tr><td colspan="6">no requests in the last minute</td></tr>'
  return stages.map(s => `<tr data-stage="${s.stage}"><td><span class="sw" style="background:${colourOf(s.stage)}"></span>${s.stage}</td>` +
    `<td class="n">${s.count}</td><td class="n">${fmt(s.p50)}</td><td class="n">${fmt(s.p95)}</td><td class="n">${fmt(s.p99)}</td>` +
    `<td style="color:${colourOf(s.stage)}">${sparkline(s.spark)}</td></tr>`).join('')
}

// TCP_INFO's waits are whole milliseconds; the page's bins hold each one exactly below 32 ms, and to ≈ 3 % above.
const wait = (ms: number): string => ms < 32 ? String(ms) : `≈ ${Math.round(ms)}`

/** "bad_request 3, request_timeout 1", most frequent first. */
function byReason (counts: Record<string, number>): string {
  return Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${esc(reason)} <b>${n}</b>`).join(', ')
}

/** "connection errors since start: bad_request 3, request_timeout 1 · "; nothing without any. */
function connectionErrors (errors: Record<string, number>): string {
  return Object.keys(errors).length === 0 ? '' : `connection errors since start: ${byReason(errors)} · `
}

function renderConnections (c: Snapshot['connections']): string {
  return `<b>${c.active}</b> open · <b>${c.inFlight}</b> requests in flight · <b>${c.acceptedPerSecond.toFixed(1)}</b> accepted/s (last 10 s) · ` +
    `TLS handshakes since start: <b>${c.tlsFull}</b> full, ` +
    // Which failure says what to do: a client refusing the certificate is not a scanner sending plain HTTP.
    `<b>${c.tlsResumed}</b> resumed, <b>${c.tlsFailed}</b> failed${c.tlsFailed > 0 ? ` (${byReason(c.tlsFailures)})` : ''} · ` +
    // Only where it happens: most servers set no maxConnections, and a 0 there would only be noise.
    (c.dropped > 0 ? `<b>${c.dropped}</b> dropped at maxConnections since start · ` : '') +
    connectionErrors(c.errors) +
    (c.kernelWait === undefined
      ? 'kernel wait before accept: not measured (no TCP_INFO addon)'
      : c.kernelWait.count === 0
        ? 'kernel wait before accept: no new connections'
        : `kernel wait before accept: p50 <b>${wait(c.kernelWait.p50)} ms</b>, p99 <b>${wait(c.kernelWait.p99)} ms</b> (TCP_INFO, in whole jiffies)`) +
    // Only once requests measured it: most requests are not traced, and "none" would read as "no wait".
    (c.readKernelWait === undefined || c.readKernelWait.count === 0
      ? ''
      : ` · <span title="how long requests' bytes sat in the kernel's receive queue before the event loop read them (TCP_INFO, journey.read.kernel_wait_ms), read for traced requests — every request in fine mode, but over TLS —: with partial sampling a sample">before read: p50 <b>${wait(c.readKernelWait.p50)} ms</b>, p99 <b>${wait(c.readKernelWait.p99)} ms</b> (${c.readKernelWait.count} requests measured)</span>`)
}

export function fragments (snap: Snapshot, jaegerUrl?: string): { rows: string, slowest: string, stages: string, connections: string, lastId: number } {
  return {
    rows: snap.recent.map(r => renderRow(r, jaegerUrl)).join(''),
    slowest: snap.slowest.map(r => renderRow(r, jaegerUrl)).join('') || '<tr><td colspan="7">none in the last minute</td></tr>',
    stages: renderStages(snap.stages),
    connections: renderConnections(snap.connections),
    lastId: snap.recent[0]?.id ?? 0
  }
}

// On a phone (≤ 700 px) the request tables made the page ≈ 760 px wide, its waterfalls off the screen: there
// the time-of-day and scheme columns and the sparklines go, cells wrap, and a request table scrolls by itself.
const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1rem 2rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:2px 6px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
.n{text-align:right;font-variant-numeric:tabular-nums}.t{color:#777;font-variant-numeric:tabular-nums}
.w{width:45%}.bar{position:relative;height:12px;background:${GAP_COLOR};border-radius:2px}.seg{position:absolute;top:0;height:12px;min-width:1px}.mark{position:absolute;top:0;height:12px;width:2px;margin-left:-1px;background:#6b5400}
.sw{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.spark{width:120px;height:20px}.s.\\35 xx,.s.aborted{color:#c4162a;font-weight:600}.s.\\34 xx{color:#b86e00}
.legend span{margin-right:12px}.stats{margin:.4rem 0}.reqs .bar{cursor:pointer}.reqs .bar:focus-visible{outline:2px solid #1a73e8;outline-offset:1px}.detail td{white-space:normal;color:#444;font-size:.85rem;background:#f4f4f4}
.filter{display:inline;margin-left:1.5rem;font-size:.85rem;font-weight:normal;color:#555}.filter label{margin-left:.4rem}
@media (max-width:700px){body{margin:.5rem}td,th{padding:2px 3px;white-space:normal}.n{white-space:nowrap}.w{min-width:100px}.filter{display:block;margin:0}
.reqs .req td:nth-child(-n+2),.reqs th:nth-child(-n+2),.pct td:nth-child(6),.pct th:nth-child(6){display:none}
.reqs{display:block;overflow-x:auto}}`

const SCRIPT = `
const es = new EventSource('/journey/events?since=' + document.body.dataset.last);
const $ = (id) => document.getElementById(id);
function applyFilter () {
  const route = $('route').value, status = $('status').value;
  for (const tr of document.querySelectorAll('#recent tr.req')) {
    tr.hidden = (route && tr.dataset.route !== route) || (status && tr.dataset.status !== status);
    if (tr.nextElementSibling?.classList.contains('detail')) tr.nextElementSibling.hidden = tr.hidden;
  }
}
// A click (a tap: touch screens have no hover), or Enter or Space on a waterfall reached with Tab, opens
// under its row what hovering says. The slowest list is redrawn as it changes: its open rows are remembered.
const openSlow = new Set();
function toggleDetail (bar) {
  const tr = bar.closest('tr');
  const open = !tr.nextElementSibling?.classList.contains('detail');
  bar.setAttribute('aria-expanded', String(open));
  if (tr.parentElement.id === 'slowest') { if (open) openSlow.add(tr.dataset.id); else openSlow.delete(tr.dataset.id); }
  if (!open) { tr.nextElementSibling.remove(); return; }
  const detail = document.createElement('tr');
  detail.className = 'detail';
  const td = detail.insertCell();
  td.colSpan = tr.cells.length;
  for (const line of [tr.cells[4].title, ...[...bar.children].map(s => s.title)].filter(Boolean)) td.append(line, document.createElement('br'));
  tr.after(detail);
}
function focusable () {
  for (const bar of document.querySelectorAll('.reqs .bar:not([tabindex])')) {
    bar.tabIndex = 0; bar.setAttribute('role', 'button'); bar.setAttribute('aria-expanded', 'false');
  }
}
// Redrawn only when it changed, keeping what was open and where the focus was.
let slowestHtml = '';
function redrawSlowest (html) {
  if (html === slowestHtml) return;
  slowestHtml = html;
  const focused = document.activeElement?.closest?.('#slowest tr.req')?.dataset.id;
  $('slowest').innerHTML = html;
  focusable();
  const shown = new Set();
  for (const tr of $('slowest').querySelectorAll('tr.req')) {
    shown.add(tr.dataset.id);
    if (openSlow.has(tr.dataset.id)) toggleDetail(tr.querySelector('.bar'));
    if (tr.dataset.id === focused) tr.querySelector('.bar').focus();
  }
  for (const id of openSlow) if (!shown.has(id)) openSlow.delete(id);
}
focusable();
document.addEventListener('click', (e) => {
  const bar = e.target.closest?.('.reqs .bar');
  if (bar) toggleDetail(bar);
});
document.addEventListener('keydown', (e) => {
  if ((e.key === 'Enter' || e.key === ' ') && e.target.matches?.('.reqs .bar')) { e.preventDefault(); toggleDetail(e.target); }
});
$('route').onchange = $('status').onchange = applyFilter;
es.onmessage = (e) => {
  const f = JSON.parse(e.data);
  $('stages').innerHTML = f.stages; redrawSlowest(f.slowest); $('conns').innerHTML = f.connections;
  if (f.rows) {
    $('recent').insertAdjacentHTML('afterbegin', f.rows);
    const rows = $('recent').querySelectorAll('tr.req');
    for (let i = ${'${MAX}'}; i < rows.length; i++) {
      if (rows[i].nextElementSibling?.classList.contains('detail')) rows[i].nextElementSibling.remove();
      rows[i].remove();
    }
    focusable();
    for (const r of new Set([...document.querySelectorAll('#recent tr.req')].map(tr => tr.dataset.route))) {
      if (![...$('route').options].some(o => o.value === r)) $('route').add(new Option(r, r));
    }
    applyFilter();
  }
  $('live').textContent = 'live';
};
es.onerror = () => { $('live').textContent = 'reconnecting…'; };`

// The request tables' columns, named once: a newcomer reads "#12/3" and the time column without the README.
const REQUEST_HEAD = '<thead><tr><th>at</th><th>scheme</th><th>request</th><th>status</th>' +
  '<th class="n" title="the waterfall\'s length: a connection\'s first request from accept; hover a time for the request\'s own">time</th>' +
  '<th>stages (hover one; click for all)</th><th title="connection #, its request #">conn/req</th></tr></thead>'

function renderPage (snap: Snapshot, opts: { jaegerUrl?: string | undefined, route?: string | undefined, status?: string | undefined, max: number }): string {
  const routes = [...new Set(snap.recent.map(r => r.route))].sort()
  const visible = snap.recent.filter(r => (opts.route === undefined || r.route === opts.route) && (opts.status === undefined || statusClass(r) === opts.status))
  const f = fragments({ ...snap, recent: visible }, opts.jaegerUrl)
  const option = (v: string, sel?: string): string => `<option value="${esc(v)}"${v === sel ? ' selected' : ''}>${esc(v) || 'all'}</option>`
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>request journey</title><style>${CSS}</style></head><body data-last="${snap.recent[0]?.id ?? 0}">
<h1>request journey <small id="live">snapshot</small></h1>
<div class="stats" id="conns">${f.connections}</div>
<div class="legend">${STAGES.map(s => `<span><span class="sw" style="background:${STAGE_COLORS[s]}"></span>${s}</span>`).join('')}<span title="time between stages: other plugins' hooks, the wait before a connection's first byte (the client's think time, or a busy event loop: hover the request's time), a pipelined response's wait, an error reply's error handler"><span class="sw" style="background:${GAP_COLOR}"></span>gap</span><span title="traced requests: where in decode the body had all arrived, then where it was parsed (validation follows); where in the handler its synchronous part ended and it began to wait"><span class="sw" style="background:#6b5400;width:2px"></span>body arrived · parsed · handler returned</span></div>
<h2>Stages, last minute (ms) <small>every request; percentiles to within 3 %</small></h2>
<table class="pct"><thead><tr><th>stage</th><th class="n">count</th><th class="n">p50</th><th class="n">p95</th><th class="n">p99</th><th>p95, 5 s buckets</th></tr></thead><tbody id="stages">${f.stages}</tbody></table>
<h2>Slowest, last minute</h2>
<table class="reqs">${REQUEST_HEAD}<tbody id="slowest">${f.slowest}</tbody></table>
<h2>Recent requests, newest first
<form method="get" class="filter">show <label>route <select id="route" name="route">${option('', opts.route)}${routes.map(r => option(r, opts.route)).join('')}</select></label>
<label>status <select id="status" name="status">${['', '1xx', '2xx', '3xx', '4xx', '5xx', 'aborted'].map(s => option(s, opts.status)).join('')}</select></label>
<noscript><button>filter</button></noscript></form></h2>
<table class="reqs">${REQUEST_HEAD}<tbody id="recent">${f.rows}</tbody></table>
<script>${SCRIPT.replace('${MAX}', String(opts.max))}</script>
</body></html>`
}

/** Registers GET /journey (the page), /journey/events (SSE) and /journey/snapshot.json on `app`. */
export function registerJourneyPage (app: FastifyInstance, opts: PageOptions): void {
  const maxClients = opts.maxClients ?? 16
  // A client that stops reading (a stalled proxy, a script that connects and waits) would otherwise have
  // every second's frame held in this process for as long as it stays connected.
  const maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024
  const clients = new Map<FastifyReply, { lastId: number }>()
  let timer: NodeJS.Timeout | undefined

  // One snapshot per second for all open pages; each page gets only the rows it has not seen.
  function tick (): void {
    let oldest = Infinity
    for (const state of clients.values()) oldest = Math.min(oldest, state.lastId)
    const snap = opts.recent.snapshot(oldest)
    for (const [reply, state] of clients) {
      if (reply.raw.writableLength > maxBuffered) {
        reply.raw.destroy() // its 'close' takes it out of `clients`
        continue
      }
      const f = fragments({ ...snap, recent: snap.recent.filter(r => r.id > state.lastId) }, opts.jaegerUrl)
      if (f.lastId > state.lastId) state.lastId = f.lastId
      reply.raw.write(`data: ${JSON.stringify(f)}\n\n`)
    }
  }

  app.get('/journey', async (request, reply) => {
    const q = request.query as { route?: string, status?: string }
    const snap = opts.recent.snapshot()
    reply.type('text/html; charset=utf-8')
    return renderPage(snap, { jaegerUrl: opts.jaegerUrl, route: q.route || undefined, status: q.status || undefined, max: 200 })
  })

  app.get('/journey/snapshot.json', async () => opts.recent.snapshot())

  app.get('/journey/events', (request, reply) => {
    if (clients.size >= maxClients) return reply.code(503).send({ error: 'too many live journey pages open' })
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    // Rows the page already rendered are not sent again.
    const since = Number((request.query as { since?: string }).since)
    clients.set(reply, { lastId: Number.isInteger(since) && since >= 0 ? since : 0 })
    reply.raw.write('retry: 2000\n\n')
    timer ??= setInterval(tick, 1000).unref()
    reply.raw.on('close', () => {
      clients.delete(reply)
      if (clients.size === 0 && timer !== undefined) { clearInterval(timer); timer = undefined }
    })
  })

  // preClose, not onClose: Fastify runs onClose hooks only once its server has closed, and a server closes
  // only when its connections have; a live page's stream (hijacked, endless) kept the app from closing at
  // all — the demo's shutdown hung on an open journey page until killed.
  app.addHook('preClose', async () => {
    if (timer !== undefined) clearInterval(timer)
    timer = undefined
    // Ended, so a reading page sees its stream finish; one that stopped reading would hold the close until
    // it read everything: that one is cut.
    for (const reply of clients.keys()) {
      if (reply.raw.writableLength > 0) reply.raw.destroy()
      else reply.raw.end()
    }
    clients.clear()
  })
}
