// The W3C Server-Timing response header: the stages a request has been through by the time its response
// headers go out, so that a browser's devtools (Network → a request → Timing) show them beside the
// browser's own phases — its connection set-up, TLS and waiting for the first byte — and a page's scripts
// can read them (PerformanceResourceTiming.serverTiming). Opt-in (JourneyOptions.serverTiming): every
// client sees what the server spent, which an operator may not want to show the world (auth timing).
//
// Written by hand: no library knows the journey's stages, and the header is a comma-separated list of
// `name;dur=ms` items (https://www.w3.org/TR/server-timing/).
import { STAGES } from './stages.ts'
import { kernelWaitsOf, StageTable, walkTimeline, type KernelWaits, type Marks } from './timeline.ts'

/**
 * What the header needs of a request record: its marks so far (no write mark yet), its trace ids when
 * head-sampled, and the kernel's waits when read (TCP_INFO: at accept; before read for traced requests).
 */
export type TimedRecord = Marks & KernelWaits & { sampled: boolean, traceId: string | undefined, spanId: string | undefined }

// Reused: the header is built synchronously in onSend, one request at a time.
const table = new StageTable()

// A duration (≥ 0) in milliseconds to the µs. Not toFixed(3), which was half the value's cost (0.72 against
// 0.38 µs a header here): integers and a table of 1,000 strings. (At an exact half µs the two may round
// differently; both are the µs nearest.)
const FRACTION = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'))
function ms (x: number): string {
  const us = Math.round(x * 1000)
  const frac = us % 1000
  return `${(us - frac) / 1000}.${FRACTION[frac]!}`
}

/**
 * The header's value for a request whose response is about to be written (`sentAt`: its serializeEndAt):
 * one `<stage>;dur=<ms>` per stage it had, in journey order — so write, which starts only after the
 * headers, is never in it — then the server's time between stages (`hooks`, and `error_handler` when an
 * error was handled), the kernel's waits before the stages when read (`accept_kernel_wait` on a
 * connection's first request, `read_kernel_wait` on a traced one), and for a head-sampled request its trace as `traceparent;desc="…"`, the form
 * browser-side tracing reads to join its own spans to the server's trace. The same timeline walk the
 * spans and histograms use, ended at `sentAt`: each stage's duration is its span's.
 */
export function serverTimingValue (rec: TimedRecord, sentAt: number): string {
  // The record itself, not a copy (another object shape would make the walk every request shares polymorphic):
  // in onSend, before the write's mark, it has no write stage yet.
  const t = walkTimeline(rec, table, sentAt)
  let value = ''
  for (let k = 0; k < t.count; k++) {
    value += `${value === '' ? '' : ', '}${STAGES[t.index[k]!]!};dur=${ms(t.to[k]! - t.from[k]!)}`
  }
  value += `${value === '' ? '' : ', '}hooks;dur=${ms(t.hooksMs)}`
  if (t.errorHandlerMs > 0) value += `, error_handler;dur=${ms(t.errorHandlerMs)}`
  // The waits in the kernel before the stages, whole ms: a browser's "waiting for server response" holds
  // them, and without them a long wait beside short stages reads as the network's.
  const kernel = kernelWaitsOf(rec, t.count > 0 ? STAGES[t.index[0]!] : undefined)
  if (kernel.acceptMs !== undefined) value += `, accept_kernel_wait;dur=${kernel.acceptMs}`
  if (kernel.readMs !== undefined) value += `, read_kernel_wait;dur=${kernel.readMs}`
  if (rec.sampled && rec.traceId !== undefined && rec.spanId !== undefined) {
    value += `, traceparent;desc="00-${rec.traceId}-${rec.spanId}-01"`
  }
  return value
}
