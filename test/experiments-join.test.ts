// The client/server join's clock arithmetic on made-up marks, where the right answer is known.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { estimateOffset, join, timeline } from '../experiments/lib/join.ts'
import type { Phases } from '../experiments/lib/phase-client.ts'
import type { ReceivedSpan } from '../experiments/lib/span-receiver.ts'

const T = 1_800_000_000_000
function request (i: number, serverAhead: number, acceptWait: number): { phases: Phases, spans: ReceivedSpan[] } {
  const t0 = T + i * 100
  const phases: Phases = { start: t0, connected: t0 + 0.2, secure: NaN, written: t0 + 0.3, firstByte: t0 + acceptWait + 1.2, end: t0 + acceptWait + 1.5, status: 200, error: undefined, resumed: false, session: undefined, traceId: 'a'.repeat(31) + String(i % 10) }
  const s = t0 + serverAhead // server-clock view of client time 0
  const span = (name: string, start: number, end: number, parentSpanId: string | undefined = 'req'): ReceivedSpan =>
    ({ name, traceId: phases.traceId!, spanId: name === 'GET /' ? 'req' : name, parentSpanId, kind: name === 'GET /' ? 2 : 1, start: s + start, end: s + end, attributes: {} })
  return {
    phases,
    spans: [
      span('GET /', 0.25 + acceptWait, 1.1 + acceptWait, 'client'),
      span('journey.accept', 0.25 + acceptWait, 0.3 + acceptWait),
      span('journey.read', 0.4 + acceptWait, 0.45 + acceptWait),
      span('journey.write', 1.0 + acceptWait, 1.1 + acceptWait)
    ]
  }
}

test('clocks that agree get no correction; a server clock 3 ms ahead is corrected by at least what causality demands', () => {
  const agree = Array.from({ length: 20 }, (_, i) => request(i, 0, i % 2 === 0 ? 0 : 30))
  assert.equal(estimateOffset(agree).offsetMs, 0)
  const ahead = Array.from({ length: 20 }, (_, i) => request(i, 3, i % 2 === 0 ? 0 : 30))
  const c = estimateOffset(ahead)
  assert.ok(c.offsetMs > 2.7 && c.offsetMs <= 3.05, `offset ${c.offsetMs}`)
  const j = join(ahead[1]!.phases, ahead[1]!.spans, c.offsetMs)!
  assert.ok(Math.abs(j.connectedToAcceptMs - 30.05) < 0.4, `connected → accept ${j.connectedToAcceptMs}`)
  assert.ok(j.server.stages.at(-1)!.start <= j.client.firstByte, 'after correction the response starts before the client sees it')
  assert.deepEqual(j.server.stages.map(s => s.name), ['accept', 'read', 'write'])
})

test('a trace the server did not export joins to nothing', () => {
  const { phases } = request(0, 0, 0)
  assert.equal(join(phases, []), undefined)
  assert.equal(join({ ...phases, traceId: undefined }, request(0, 0, 0).spans), undefined)
})

test('a first byte the client read long after the server wrote is said to be the client\'s wait, a prompt one is not', () => {
  const { phases, spans } = request(0, 0, 0)
  const prompt = timeline(join(phases, spans)!).find(l => l.includes('first response byte'))!
  assert.doesNotMatch(prompt, /wait to read/)
  const late = timeline(join({ ...phases, firstByte: phases.firstByte + 14, end: phases.end + 14 }, spans)!)
    .find(l => l.includes('first response byte'))!
  assert.match(late, /14\.\d\d ms after the server began writing: the wire, and the client's own wait to read/)
})
