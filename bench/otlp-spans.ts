// Counts the spans in an OTLP/HTTP protobuf export request, so the bench can say how many spans each
// variant really delivered (bytes alone hide a queue that drops spans under load).
//
// protobufjs with the smallest schema that reaches the spans: ExportTraceServiceRequest.resource_spans (1)
// → ResourceSpans.scope_spans (2) → ScopeSpans.spans (2). Every other field, and every field of a span, is
// skipped as unknown, which keeps the receiver cheap on the load generator's core. The field numbers are
// those of opentelemetry-proto's trace/v1 and collector/trace/v1 messages.
import protobuf from 'protobufjs'

const root = protobuf.Root.fromJSON({
  nested: {
    ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
    ResourceSpans: { fields: { scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 } } },
    ScopeSpans: { fields: { spans: { rule: 'repeated', type: 'Span', id: 2 } } },
    Span: { fields: {} }
  }
})
const Request = root.lookupType('ExportTraceServiceRequest')

interface Decoded { resourceSpans: Array<{ scopeSpans: Array<{ spans: unknown[] }> }> }

/** Spans in one protobuf-encoded ExportTraceServiceRequest; throws on a body that is not one. */
export function countSpans (body: Uint8Array): number {
  const msg = Request.decode(body) as unknown as Decoded
  let n = 0
  for (const rs of msg.resourceSpans) for (const ss of rs.scopeSpans) n += ss.spans.length
  return n
}
