// The W3C Server-Timing response header: the stages a request has been through by the time its response
// headers go out, so that a browser's devtools (Network → a request → Timing) show them beside the
// browser's own phases — its connection set-up, TLS and waiting for the first byte — and a page's scripts
// can read them (PerformanceResourceTiming.serverTiming). Opt-in (JourneyOptions.serverTiming): every
// client sees what the server spent, which an operator may not want to show the world (auth timing).
//
// Written by hand: no library knows the journey's stages, and the header is a comma-separated list of
// `name;dur=ms` items (https://www.w3.org/TR/server-timing/).
import { STAGES } from './stages.ts'
import { StageTable, walkTimeline, type Marks } from './timeline.ts'

/** What the header needs of a request record: its marks so far, and its trace ids when head-sampled. */
export type TimedRecord = Marks & { sampled: boolean, traceId: string | undefined, spanId: string | undefined }

// Reused: the header is built synchronously in onSend, one request at a time.
const table = new StageTable()
const marks: Marks = {
  acceptAt: NaN, acceptedAt: NaN, secureAt: NaN, beginAt: NaN, decryptStartAt: NaN, headersAt: NaN, requestAt: NaN,
  decodeStartAt: NaN, decodeEndAt: NaN, handlerStartAt: NaN, handlerEndAt: NaN, serializeEndAt: NaN,
  writeStartAt: NaN, finishAt: NaN, endAt: NaN, errorAt: NaN
}

const ms = (x: number): string => x.toFixed(3)

/**
 * The header's value for a request whose response is about to be written (`sentAt`: its serializeEndAt):
 * one `<stage>;dur=<ms>` per stage it had, in journey order — so write, which starts only after the
 * headers, is never in it — then the server's time between stages (`hooks`, and `error_handler` when an
 * error was handled), and for a head-sampled request its trace as `traceparent;desc="…"`, the form
 * browser-side tracing reads to join its own spans to the server's trace. The same timeline walk the
 * spans and histograms use, ended at `sentAt`: each stage's duration is its span's.
 */
export function serverTimingValue (rec: TimedRecord, sentAt: number): string {
  marks.acceptAt = rec.acceptAt
  marks.acceptedAt = rec.acceptedAt
  marks.secureAt = rec.secureAt
  marks.beginAt = rec.beginAt
  marks.decryptStartAt = rec.decryptStartAt
  marks.headersAt = rec.headersAt
  marks.requestAt = rec.requestAt
  marks.decodeStartAt = rec.decodeStartAt
  marks.decodeEndAt = rec.decodeEndAt
  marks.handlerStartAt = rec.handlerStartAt
  marks.handlerEndAt = rec.handlerEndAt
  marks.serializeEndAt = rec.serializeEndAt
  marks.errorAt = rec.errorAt
  // As if the request ended as its headers go out: no write stage yet, nothing after sentAt.
  marks.writeStartAt = NaN
  marks.finishAt = NaN
  marks.endAt = sentAt
  const t = walkTimeline(marks, table)
  let value = ''
  for (let k = 0; k < t.count; k++) {
    value += `${value === '' ? '' : ', '}${STAGES[t.index[k]!]!};dur=${ms(t.to[k]! - t.from[k]!)}`
  }
  value += `${value === '' ? '' : ', '}hooks;dur=${ms(t.hooksMs)}`
  if (t.errorHandlerMs > 0) value += `, error_handler;dur=${ms(t.errorHandlerMs)}`
  if (rec.sampled && rec.traceId !== undefined && rec.spanId !== undefined) {
    value += `, traceparent;desc="00-${rec.traceId}-${rec.spanId}-01"`
  }
  return value
}
