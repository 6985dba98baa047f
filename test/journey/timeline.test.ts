// The timeline maths, on hand-made marks.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildTimeline, mostStages, StageTable, summarize, tableOf, timelineOf, walkTimeline } from '../../src/journey/timeline.ts'
import { STAGES } from '../../src/journey/stages.ts'

const N = NaN
const base = {
  acceptAt: N, acceptedAt: N, secureAt: N, beginAt: 10, decryptStartAt: N, headersAt: 12, requestAt: 13, decodeStartAt: 13.5,
  decodeEndAt: 15, handlerStartAt: 15.5, handlerEndAt: 20, serializeEndAt: 21, writeStartAt: 21, finishAt: 25, endAt: 25, errorAt: N
}

test('a keep-alive request: read → write, hooks in the gaps', () => {
  const tl = buildTimeline(base)
  assert.deepEqual(tl.stages.map(s => [s.stage, s.end - s.start]), [
    ['read', 2], ['parse', 1], ['decode', 1.5], ['handler', 4.5], ['serialize', 1], ['write', 4]
  ])
  assert.equal(tl.start, 10)
  assert.equal(tl.end, 25)
  assert.equal(tl.gapMs, 1, 'other plugins\' onRequest (0.5) and preHandler (0.5) hooks')
  assert.equal(tl.idleBeforeRequestMs, 0)
  assert.equal(tl.pipelinedMs, 0)
  assert.equal(tl.hooksMs, 1)
  assert.equal(tl.requestStart, 10)
})

test('a response pipelined behind an earlier one: write starts when it gets the socket, the wait before is a gap', () => {
  const tl = buildTimeline({ ...base, writeStartAt: 23.5 })
  assert.deepEqual(tl.stages.slice(-2).map(s => [s.stage, s.start, s.end]), [['serialize', 20, 21], ['write', 23.5, 25]])
  assert.equal(tl.pipelinedMs, 2.5)
  assert.equal(tl.gapMs, 3.5, 'hooks (1) and the wait for the earlier response (2.5)')
  assert.equal(tl.hooksMs, 1)
  // The connection closed before the earlier response finished: this one never wrote a byte.
  const never = buildTimeline({ ...base, writeStartAt: N, finishAt: N, endAt: 30 })
  assert.deepEqual(never.stages.map(s => s.stage).at(-1), 'serialize')
  assert.equal(never.pipelinedMs, 9)
  assert.equal(never.gapMs, 10)
})

test('a handler that wrote the response itself (no onSend, yet it finished): handler runs to finish, not cut', () => {
  const tl = buildTimeline({ ...base, handlerEndAt: N, serializeEndAt: N, writeStartAt: N })
  assert.deepEqual(tl.stages.map(s => [s.stage, s.end - s.start, s.cut]).slice(-2), [['decode', 1.5, false], ['handler', 9.5, false]])
  // The same marks cut off by the client (no finish) are a cut handler, as before.
  const cut = buildTimeline({ ...base, handlerEndAt: N, serializeEndAt: N, writeStartAt: N, finishAt: N, endAt: 30 })
  assert.deepEqual(cut.stages.map(s => [s.stage, s.end - s.start, s.cut]).at(-1), ['handler', 14.5, true])
})

test('first request on a TLS connection: accept, tls, idle until the first byte', () => {
  const tl = buildTimeline({ ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 4 })
  assert.deepEqual(tl.stages.map(s => s.stage), ['accept', 'tls', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'])
  assert.equal(tl.start, 1)
  assert.equal(tl.idleBeforeRequestMs, 6)
  assert.equal(tl.hooksMs, 1, 'the idle time before the first byte is not the server\'s')
  const covered = tl.stages.reduce((a, s) => a + s.end - s.start, 0)
  assert.ok(Math.abs(covered + tl.gapMs - (tl.end - tl.start)) < 1e-9)
})

test('a request cut off in decode: decode ends at the cut, later stages are absent', () => {
  const tl = buildTimeline({ ...base, decodeEndAt: N, handlerStartAt: N, handlerEndAt: N, serializeEndAt: N, writeStartAt: N, finishAt: N, endAt: 40 })
  assert.deepEqual(tl.stages.map(s => s.stage), ['read', 'parse', 'decode'])
  const decode = tl.stages.at(-1)!
  assert.equal(decode.cut, true)
  assert.equal(decode.end, 40)
  assert.equal(tl.end, 40)
})

test('no parser marks (unobservable parser): the timeline starts at the request object', () => {
  const tl = buildTimeline({ ...base, beginAt: N, headersAt: N })
  assert.equal(tl.stages[0]!.stage, 'decode')
  assert.equal(tl.start, 13)
  assert.equal(tl.requestStart, 13)
  assert.equal(tl.gapMs, 1)
  // A connection's first request: the wait from accept to the request object (the client's, and the read
  // and parse no mark shows) is no hook's, so the request's stages and gaps still sum to its duration.
  const first = buildTimeline({ ...base, beginAt: N, headersAt: N, acceptAt: 1, acceptedAt: 2 })
  assert.deepEqual([first.start, first.requestStart, first.idleBeforeRequestMs, first.hooksMs], [1, 13, 11, 1])
  const fromRequest = first.stages.filter(s => s.start >= first.requestStart).reduce((a, s) => a + s.end - s.start, 0)
  assert.equal(fromRequest + first.hooksMs, first.end - first.requestStart)
})

test('fine mode on TLS: read until the last ciphertext arrived, then decrypt, then parse', () => {
  const tl = buildTimeline({ ...base, decryptStartAt: 11.5 })
  assert.deepEqual(tl.stages.slice(0, 3).map(s => [s.stage, s.end - s.start]), [['read', 1.5], ['decrypt', 0.5], ['parse', 1]])
})

test('fine mode on TLS 1.3: a request that arrived with the handshake\'s last packet is read from the handshake\'s end', () => {
  const tl = buildTimeline({ ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 10.5, decryptStartAt: 10.2 })
  const [, tls, read, decrypt] = tl.stages
  assert.equal(tls!.end, 10.5)
  assert.equal(read!.start, 10.5)
  assert.equal(decrypt!.start, 10.5)
  assert.equal(decrypt!.end, 12)
  assert.equal(tl.requestStart, 10.5, 'the request (and its duration metric) starts there too, not at its first ciphertext (10)')
})

test('an error during decode (invalid JSON): decode ends at the error, the error handler is a gap until onSend', () => {
  // Fastify's default error handler logs and serializes the error itself: onSend (17) ends "the handler"
  // and finds nothing serialized since.
  const tl = buildTimeline({ ...base, decodeEndAt: N, handlerStartAt: N, handlerEndAt: 17, serializeEndAt: 17, writeStartAt: 17, errorAt: 14 })
  assert.deepEqual(tl.stages.map(s => [s.stage, s.start, s.end, s.cut]), [
    ['read', 10, 12, false], ['parse', 12, 13, false], ['decode', 13.5, 14, true], ['serialize', 17, 17, false], ['write', 17, 25, false]
  ])
  assert.equal(tl.errorHandlerMs, 3)
  assert.equal(tl.hooksMs, 0.5, 'the hooks before decode, and nothing of the error handler')
  // Without the error's mark (a record from before it, or a client that left mid-body), decode still ends
  // at the next thing that happened.
  const unmarked = buildTimeline({ ...base, decodeEndAt: N, handlerStartAt: N, handlerEndAt: 17, serializeEndAt: 17, writeStartAt: 17 })
  assert.deepEqual(unmarked.stages.find(s => s.stage === 'decode'), { stage: 'decode', index: STAGES.indexOf('decode'), start: 13.5, end: 17, cut: true })
  assert.equal(unmarked.errorHandlerMs, 0)
})

test('a handler that threw: handler ends at the error; what your error handler sends is serialized after it', () => {
  // Fastify's default handler: onSend at 20.5 ends the error handling; no serialize of its own.
  const byDefault = buildTimeline({ ...base, handlerEndAt: 20.5, serializeEndAt: 20.5, writeStartAt: 20.5, errorAt: 18 })
  assert.deepEqual(byDefault.stages.slice(-3).map(s => [s.stage, s.start, s.end, s.cut]), [
    ['handler', 15.5, 18, true], ['serialize', 20.5, 20.5, false], ['write', 20.5, 25, false]
  ])
  assert.equal(byDefault.errorHandlerMs, 2.5)
  assert.equal(byDefault.hooksMs, 1)
  // A setErrorHandler that sends an object: preSerialization (19) ends the error handling, serialize follows.
  const custom = buildTimeline({ ...base, handlerEndAt: 19, serializeEndAt: 21, writeStartAt: 21, errorAt: 18 })
  assert.deepEqual(custom.stages.slice(-3).map(s => [s.stage, s.start, s.end, s.cut]), [
    ['handler', 15.5, 18, true], ['serialize', 19, 21, false], ['write', 21, 25, false]
  ])
  assert.equal(custom.errorHandlerMs, 1)
  // Stages plus gaps still make up the request.
  for (const tl of [byDefault, custom]) {
    const covered = tl.stages.reduce((a, s) => a + s.end - s.start, 0)
    assert.equal(covered + tl.hooksMs + tl.errorHandlerMs + tl.pipelinedMs + tl.idleBeforeRequestMs, tl.end - tl.start)
  }
})

test('errors outside a stage: a hook\'s error is a gap of its own; a serializer\'s error cuts serialize; one after the end changes nothing', () => {
  // An auth hook of the app (onRequest, after the journey's) throws at 13.2: no decode, no handler.
  const hook = buildTimeline({ ...base, decodeStartAt: N, decodeEndAt: N, handlerStartAt: N, handlerEndAt: 14, serializeEndAt: 14, writeStartAt: 14, errorAt: 13.2 })
  assert.deepEqual(hook.stages.map(s => s.stage), ['read', 'parse', 'serialize', 'write'])
  assert.ok(Math.abs(hook.hooksMs - 0.2) < 1e-9, 'the hook until it threw')
  assert.ok(Math.abs(hook.errorHandlerMs - 0.8) < 1e-9)
  // The serializer throws at 20.2 (handler done at 20); onSend at 20.7.
  const ser = buildTimeline({ ...base, serializeEndAt: 20.7, writeStartAt: 20.7, errorAt: 20.2 })
  assert.deepEqual(ser.stages.slice(-2).map(s => [s.stage, s.start, s.end, s.cut]), [['serialize', 20, 20.2, true], ['write', 20.7, 25, false]])
  assert.ok(Math.abs(ser.errorHandlerMs - 0.5) < 1e-9)
  // Another plugin's onSend hook throws at 22, after the journey's onSend (21): write had begun, the error
  // cuts it, and the error reply (Fastify's second onSend, which the journey leaves alone) is the gap's.
  const onSend = buildTimeline({ ...base, errorAt: 22 })
  assert.deepEqual(onSend.stages.slice(-2).map(s => [s.stage, s.start, s.end, s.cut]), [['serialize', 20, 21, false], ['write', 21, 22, true]])
  assert.equal(onSend.errorHandlerMs, 3)
  assert.equal(onSend.pipelinedMs, 0)
  // A response stream that fails after its last byte was handed over.
  const late = buildTimeline({ ...base, errorAt: 26 })
  assert.deepEqual(late.stages, buildTimeline(base).stages)
  assert.equal(late.errorHandlerMs, 0)
})

test('mostStages, known at a request\'s start, bounds its timeline and is reached when every stage happens', () => {
  const complete = [
    base, // keep-alive
    { ...base, acceptAt: 1, acceptedAt: 1.1 }, // first request, HTTP
    { ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 4 }, // first request, HTTPS
    { ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 4, decryptStartAt: 11.5 }, // first, HTTPS, fine mode
    { ...base, decryptStartAt: 11.5 } // keep-alive, HTTPS, fine mode
  ]
  assert.deepEqual(complete.map(mostStages), [6, 7, 8, 9, 7])
  for (const m of complete) assert.equal(buildTimeline(m).stages.length, mostStages(m))
  // The metrics consumer files each interval under its index: an index that is not its stage's would put
  // one stage's time in another's histogram.
  for (const m of complete) for (const iv of buildTimeline(m).stages) assert.equal(STAGES[iv.index], iv.stage)
  const partial = [
    { ...base, decodeEndAt: N, handlerStartAt: N, handlerEndAt: N, serializeEndAt: N, writeStartAt: N, finishAt: N, endAt: 40 },
    { ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 4, beginAt: N, headersAt: N },
    { ...base, decodeStartAt: N, decodeEndAt: N }
  ]
  for (const m of partial) assert.ok(buildTimeline(m).stages.length < mostStages(m))
})

test('summarize: a finished request\'s duration (from read), stages and gaps in ms, rounded to the µs; nothing while it runs', () => {
  const sum = summarize({ ...base, acceptAt: 1, acceptedAt: 1.1 })!
  assert.deepEqual(sum, {
    ms: 15,
    stages: { accept: 0.1, read: 2, parse: 1, decode: 1.5, handler: 4.5, serialize: 1, write: 4 },
    hooksMs: 1,
    pipelinedMs: 0,
    errorHandlerMs: 0
  })
  assert.equal(summarize({ ...base, finishAt: N, endAt: N }), undefined)
})

test('one StageTable reused from request to request (as the consumers reuse theirs) reads exactly what buildTimeline builds', () => {
  const records = [
    { ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 4, decryptStartAt: 11.5 }, // nine stages
    base, // then six: nothing of the nine may linger
    { ...base, handlerEndAt: N, serializeEndAt: N, writeStartAt: N, finishAt: N, endAt: 30 }, // cut
    { ...base, writeStartAt: 23.5 }, // pipelined
    { ...base, beginAt: N, headersAt: N }, // no parser marks
    { ...base, decodeEndAt: N, handlerStartAt: N, handlerEndAt: N, serializeEndAt: N, writeStartAt: N, finishAt: N, endAt: 40 }
  ]
  const table = new StageTable()
  for (const m of records) {
    const t = walkTimeline(m, table)
    const tl = buildTimeline(m)
    const walked = Array.from({ length: t.count }, (_, k) => ({
      stage: STAGES[t.index[k]!], index: t.index[k], start: t.from[k], end: t.to[k], cut: t.cut[k] === 1
    }))
    assert.deepEqual(walked, tl.stages)
    assert.deepEqual(
      [t.start, t.end, t.requestStart, t.gapMs, t.idleBeforeRequestMs, t.pipelinedMs, t.hooksMs],
      [tl.start, tl.end, tl.requestStart, tl.gapMs, tl.idleBeforeRequestMs, tl.pipelinedMs, tl.hooksMs])
  }
  assert.ok(records.some(m => buildTimeline(m).stages.some(s => s.cut)), 'a cut stage is among them')
})

test('tableOf: the consumers of one finished record share one walk; the next record is walked afresh', () => {
  const nine = { ...base, acceptAt: 1, acceptedAt: 1.1, secureAt: 4, decryptStartAt: 11.5 }
  const six = { ...base }
  const first = tableOf(nine)
  assert.equal(first.count, 9)
  // Asked again for the same record (a second consumer): the same table, not walked again. Changing a mark
  // in between shows which: a finished record's marks never change, so only a re-walk could see it.
  nine.finishAt = 99
  assert.equal(tableOf(nine).end, 25, 'the walk of the first ask')
  nine.finishAt = 25
  // Another record: walked, and read exactly as walkTimeline and buildTimeline read it.
  const t = tableOf(six)
  assert.equal(t.count, 6, 'nothing of the nine-stage record lingers')
  assert.deepEqual([t.start, t.end, t.hooksMs], [10, 25, 1])
  // The objects of a finished record come from the same walk, built once.
  const rec = { ...base, writeStartAt: 23.5, timeline: undefined }
  const tl = timelineOf(rec)
  assert.equal(timelineOf(rec), tl)
  assert.deepEqual(tl, buildTimeline(rec))
  assert.equal(tl.pipelinedMs, 2.5)
})
