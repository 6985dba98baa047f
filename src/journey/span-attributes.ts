// The attributes of a kept request's spans, read from its finished record. Pure: the span consumer decides
// what to build, this says what each span carries (names in stages.ts; docs/stages.md says what they mean).
import type { Attributes } from '@opentelemetry/api'
import {
  ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_URL_SCHEME
} from '@opentelemetry/semantic-conventions'
import type { ConnectionRecord, RequestRecord } from './records.ts'
import { ATTR, UNMATCHED_ROUTE, type Precision, type Stage } from './stages.ts'
import { handlerWroteResponse, type Timeline } from './timeline.ts'

/** The request span's: HTTP semantic conventions, where it sits on its connection, why it was kept, its gaps. */
export function requestAttributes (rec: RequestRecord, tl: Timeline, rule: NonNullable<RequestRecord['keptBy']>, precision: Precision): Attributes {
  const conn = rec.conn
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: rec.method,
    [ATTR_URL_SCHEME]: rec.scheme,
    [ATTR_NETWORK_PROTOCOL_VERSION]: '1.1',
    [ATTR.precision]: precision,
    [ATTR.samplingRule]: rule,
    [ATTR.listener]: conn.listener,
    [ATTR.connectionId]: conn.id,
    [ATTR.requestIndex]: rec.index,
    [ATTR.gapIdle]: tl.idleBeforeRequestMs,
    [ATTR.gapHooks]: tl.hooksMs
  }
  if (tl.pipelinedMs > 0) attributes[ATTR.gapPipelined] = tl.pipelinedMs
  if (rec.route !== UNMATCHED_ROUTE) attributes[ATTR_HTTP_ROUTE] = rec.route
  if (rec.status !== 0) attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = rec.status
  if (rec.aborted) attributes[ATTR.aborted] = true
  if (rec.queueFull) attributes[ATTR.queueFullAtStart] = true
  if (rec.beforeHooks) attributes[ATTR.beforeHooks] = true
  if (rec.headers !== undefined) Object.assign(attributes, rec.headers)
  return attributes
}

function acceptAttributes (conn: ConnectionRecord): Attributes {
  const k = conn.kernel
  if (k === undefined) return { [ATTR.acceptQueueWait]: false }
  const a: Attributes = {
    [ATTR.acceptQueueWait]: true,
    [ATTR.acceptKernelWaitMs]: k.lastAckRecvMs,
    [ATTR.acceptBytesWaiting]: k.bytesReceived,
    [ATTR.tcpRttUs]: k.rttUs
  }
  if (k.bytesReceived > 0) a[ATTR.acceptDataWaitMs] = k.lastDataRecvMs
  return a
}

export function stageAttributes (stage: Stage, rec: RequestRecord, precision: Precision): Attributes | undefined {
  switch (stage) {
    case 'accept': return acceptAttributes(rec.conn)
    case 'tls': return tlsAttributes(rec.conn)
    case 'read': {
      const a: Attributes = { [ATTR.readIncludesDecrypt]: rec.scheme === 'https' && precision === 'default' }
      if (!Number.isNaN(rec.kernelReadWaitMs)) a[ATTR.readKernelWaitMs] = rec.kernelReadWaitMs
      return a
    }
    case 'decode': {
      const a: Attributes = {}
      if (rec.contentType !== undefined) a[ATTR.contentType] = rec.contentType
      if (rec.contentEncoding !== undefined) a[ATTR.contentEncoding] = rec.contentEncoding
      if (!Number.isNaN(rec.requestBodyBytes)) a['http.request.body.size'] = rec.requestBodyBytes
      if (!Number.isNaN(rec.decodedBodyBytes)) a[ATTR.decodedBytes] = rec.decodedBodyBytes
      return a
    }
    case 'handler': return handlerWroteResponse(rec) ? { [ATTR.handlerWroteResponse]: true } : undefined
    case 'serialize': return { [ATTR.serializeSkipped]: rec.serializeSkipped }
    case 'write': {
      const a: Attributes = {}
      if (!Number.isNaN(rec.bytesWritten)) a[ATTR.bytesWritten] = rec.bytesWritten
      if (rec.backpressure !== undefined) a[ATTR.backpressure] = rec.backpressure
      return a
    }
    default: return undefined
  }
}

export function tlsAttributes (conn: ConnectionRecord): Attributes {
  const a: Attributes = { [ATTR.tlsResumed]: conn.tlsResumed }
  if (conn.tlsProtocol !== undefined) {
    // Node says 'TLSv1.3'; the semantic conventions want name 'tls' and version '1.3'.
    a['tls.protocol.name'] = 'tls'
    a[ATTR.tlsProtocol] = conn.tlsProtocol.replace(/^TLSv/, '')
  }
  if (conn.tlsCipher !== undefined) a[ATTR.tlsCipher] = conn.tlsCipher
  if (conn.tlsAlpn !== undefined) a[ATTR.tlsAlpn] = conn.tlsAlpn
  if (conn.tlsSni !== undefined) a[ATTR.tlsSni] = conn.tlsSni
  return a
}
