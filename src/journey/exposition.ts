// What a `/metrics` handler answers: OpenMetrics (with the histograms' exemplars) to a scraper that asks
// for it, Prometheus text format 0.0.4 to everyone else, as Prometheus's own client libraries do
// (https://prometheus.io/docs/instrumenting/content_negotiation). Prometheus asks for OpenMetrics first;
// curl, `promtool check metrics` and text-only agents (Telegraf's prometheus input, older scrapers) do
// not, and cannot parse an exemplar's ` # {…}`.
//
// Why the text form is derived from the OpenMetrics output rather than rendered by prom-client: a
// prom-client registry renders one format, fixed when it is made, and rendering OpenMetrics renames its
// counters in place (`x_total` becomes `x`), so switching the same registry back to text would lose their
// `_total`. Derived, the two forms name every sample the same, so one dashboard reads either scrape.
import { Registry } from 'prom-client'
import type { MetricsRegistry } from './metrics-registry.ts'

export interface Exposition {
  contentType: string
  body: string
}

/**
 * Renders `registry` for a scrape whose `Accept` header is `accept`. An OpenMetrics registry answers in
 * OpenMetrics when the scraper prefers it, else in text format; a text-format registry always in text.
 */
export async function exposition (registry: MetricsRegistry, accept: string | undefined): Promise<Exposition> {
  const body = await registry.metrics()
  if (registry.contentType !== Registry.OPENMETRICS_CONTENT_TYPE) return { contentType: registry.contentType, body }
  if (prefersOpenMetrics(accept)) return { contentType: Registry.OPENMETRICS_CONTENT_TYPE, body }
  return { contentType: Registry.PROMETHEUS_CONTENT_TYPE, body: openMetricsToText(body) }
}

/**
 * True when the Accept header names `application/openmetrics-text` (any version) with a quality above zero
 * and at least that of the text format (`text/plain`, `text/*`, or any type). A header that names neither,
 * or none at all, gets text: OpenMetrics only to those who ask, as Prometheus's Go client does.
 */
export function prefersOpenMetrics (accept: string | undefined): boolean {
  if (accept === undefined) return false
  let openMetrics = 0
  let text = 0
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';')
    const q = quality(params)
    switch (type.trim().toLowerCase()) {
      case 'application/openmetrics-text': openMetrics = Math.max(openMetrics, q); break
      case 'text/plain': case 'text/*': case '*/*': text = Math.max(text, q); break
    }
  }
  return openMetrics > 0 && openMetrics >= text
}

/** A media range's `q` parameter (1 when absent; 0, not acceptable, when it is not a number in 0–1). */
function quality (params: string[]): number {
  for (const p of params) {
    const [key = '', value = ''] = p.split('=')
    if (key.trim().toLowerCase() !== 'q') continue
    const q = Number(value.trim())
    return value.trim() !== '' && q >= 0 && q <= 1 ? q : 0
  }
  return 1
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const CLOSE_BRACE = 0x7d

/**
 * prom-client's OpenMetrics output as Prometheus text format 0.0.4: each counter family named by its
 * samples (`# TYPE x_total counter`, where OpenMetrics says `x`), no exemplars, no `# EOF`. Everything
 * else (label escaping, values, histogram series) is the same in both formats.
 */
export function openMetricsToText (om: string): string {
  const lines = om.split('\n')
  const counters = new Set<string>()
  for (const line of lines) {
    if (line.startsWith('# TYPE ') && line.endsWith(' counter')) counters.add(line.slice(7, -8))
  }
  const out: string[] = []
  for (const line of lines) {
    if (line === '# EOF' || line === '') continue
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const end = line.indexOf(' ', 7)
      const name = line.slice(7, end === -1 ? undefined : end)
      out.push(counters.has(name) ? `${line.slice(0, 7)}${name}_total${end === -1 ? '' : line.slice(end)}` : line)
    } else if (line.startsWith('#')) {
      out.push(line)
    } else {
      out.push(withoutExemplar(line))
    }
  }
  return out.join('\n') + '\n'
}

/** A sample line without its exemplar: cut at the ` # ` after the label set, whose values may hold ` # `. */
function withoutExemplar (line: string): string {
  if (!line.includes(' # ')) return line // most lines: no exemplar, and no label value that looks like one
  const brace = line.indexOf('{')
  const space = line.indexOf(' ')
  const from = brace !== -1 && (space === -1 || brace < space) ? endOfLabels(line, brace) : space
  const hash = line.indexOf(' # ', from)
  return hash === -1 ? line : line.slice(0, hash)
}

/** The index just past the `}` closing the label set that opens at `open`, skipping quoted values. */
function endOfLabels (line: string, open: number): number {
  let quoted = false
  for (let i = open + 1; i < line.length; i++) {
    const c = line.charCodeAt(i)
    if (quoted) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) quoted = false
    } else if (c === QUOTE) {
      quoted = true
    } else if (c === CLOSE_BRACE) {
      return i + 1
    }
  }
  return line.length
}
