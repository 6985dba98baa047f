// The README's performance table is generated from bench/results/latest.json: it must not drift from it.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { context, trace } from '@opentelemetry/api'
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { renderTable, type BenchMeta, type BenchRow } from '../bench/table.ts'
import { countSpans } from '../bench/otlp-spans.ts'

test('the README performance table is the rendering of bench/results/latest.json (npm run bench rewrites both)', () => {
  const read = (p: string): string => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8')
  const rows = JSON.parse(read('bench/results/latest.json')) as BenchRow[]
  const meta = JSON.parse(read('bench/results/latest.meta.json')) as BenchMeta
  assert.ok(Array.isArray(rows) && rows.length > 0)
  for (const r of rows) for (const k of ['variant', 'route', 'rps', 'rpsPerCpuSecond', 'ratio', 'p50Ms', 'p99Ms', 'peakRssMb']) assert.ok(k in r, `${k} in every row`)
  const readme = read('README.md')
  const between = readme.slice(readme.indexOf('<!-- bench:begin -->') + '<!-- bench:begin -->'.length, readme.indexOf('<!-- bench:end -->'))
  assert.equal(between, '\n' + renderTable(rows, meta))
})

test('a variant whose solo window was dropped shows dashes, not NaN, whether the row comes from memory (NaN) or JSON (null)', () => {
  const meta: BenchMeta = { date: 'd', machine: 'm', method: 'x' }
  const row: BenchRow = {
    variant: 'v', route: 'GET /', rps: NaN, rpsPerCpuSecond: NaN, ratio: 0.9, ratioMin: 0.8, ratioMax: 1, p50Ms: NaN, p99Ms: NaN, peakRssMb: 100, windowsKept: '3/3 paired, 0/1 alone', otlpBytesPerRequest: 0, otlpSpansPerRequest: NaN, spansPerRequestUnloaded: NaN,
    userUs: NaN, kernelUs: NaN, twinUserUs: NaN, twinKernelUs: NaN, addedUserUs: NaN, addedKernelUs: NaN
  }
  for (const rows of [[row], JSON.parse(JSON.stringify([row])) as BenchRow[]]) {
    const line = renderTable(rows, meta).split('\n').find(l => l.startsWith('| v |'))!
    assert.ok(!line.includes('NaN'), line)
    assert.match(line, /\*\*0\.90\*\* 0\.80–1\.00 \(—\) \|.*\| — \| 100 MB \|/)
    const split = renderTable(rows, meta).split('\n').filter(l => l.startsWith('| v |'))[1]!
    assert.equal(split, '| v | — | — | — |')
  }
})

test('the CPU split shows what a variant adds over its twin, signed, with the twin\'s own figures', () => {
  const meta: BenchMeta = { date: 'd', machine: 'm', method: 'x' }
  const row: BenchRow = {
    variant: 'v', route: 'GET /', rps: 1, rpsPerCpuSecond: 1, ratio: 0.9, ratioMin: 0.9, ratioMax: 0.9, p50Ms: 1, p99Ms: 1, peakRssMb: 1, windowsKept: '', otlpBytesPerRequest: 0, otlpSpansPerRequest: 0, spansPerRequestUnloaded: NaN,
    userUs: 9.93, kernelUs: 7.6, twinUserUs: 7.44, twinKernelUs: 7.91, addedUserUs: 2.49, addedKernelUs: -0.31
  }
  const split = renderTable([row], meta).split('\n').filter(l => l.startsWith('| v |'))[1]!
  assert.equal(split, '| v | **+2.5** / −0.3 (7.4 / 7.9) | — | — |')
  const tiny = renderTable([{ ...row, addedUserUs: -0.04, addedKernelUs: 0.04 }], meta).split('\n').filter(l => l.startsWith('| v |'))[1]!
  assert.equal(tiny, '| v | **0.0** / 0.0 (7.4 / 7.9) | — | — |')
})

test('the CPU split adds how often wrk slept per response (the twin\'s in brackets), once a result has it', () => {
  const meta: BenchMeta = { date: 'd', machine: 'm', method: 'x' }
  const row: BenchRow = {
    variant: 'v', route: 'GET /', rps: 1, rpsPerCpuSecond: 1, ratio: 0.9, ratioMin: 0.9, ratioMax: 0.9, p50Ms: 1, p99Ms: 1, peakRssMb: 1, windowsKept: '', otlpBytesPerRequest: 0, otlpSpansPerRequest: 0, spansPerRequestUnloaded: NaN,
    userUs: 9.93, kernelUs: 7.6, twinUserUs: 7.44, twinKernelUs: 7.91, addedUserUs: 2.49, addedKernelUs: -0.31, sleepsPerResponse: 0.912, twinSleepsPerResponse: 0.376
  }
  const table = renderTable([row], meta)
  assert.equal(table.split('\n').filter(l => l.startsWith('| v |'))[1], '| v | **+2.5** / −0.3 (7.4 / 7.9); 0.91 (0.38) | — | — |')
  assert.match(table, /GET \/: added µs\/request, user \/ kernel \(twin's own\); wrk sleeps\/response \(twin's\)/)
  assert.match(table, /wrk sleeps\/response: how often/)
  // Results from before it was measured render as they did.
  const old = renderTable([{ ...row, sleepsPerResponse: undefined, twinSleepsPerResponse: undefined }], meta)
  assert.equal(old.split('\n').filter(l => l.startsWith('| v |'))[1], '| v | **+2.5** / −0.3 (7.4 / 7.9) | — | — |')
  assert.doesNotMatch(old, /sleeps/)
})

test('the spans column says how many spans a request exported under load, and of how many when nothing is lost', () => {
  const meta: BenchMeta = { date: 'd', machine: 'm', method: 'x' }
  const base: BenchRow = {
    variant: 'v', route: 'GET /', rps: 1, rpsPerCpuSecond: 1, ratio: 0.9, ratioMin: 0.9, ratioMax: 0.9, p50Ms: 1, p99Ms: 1, peakRssMb: 1, windowsKept: '',
    otlpBytesPerRequest: 916, otlpSpansPerRequest: 5.3, spansPerRequestUnloaded: 7.01,
    userUs: 1, kernelUs: 1, twinUserUs: 1, twinKernelUs: 1, addedUserUs: 0, addedKernelUs: 0
  }
  const cellOf = (r: BenchRow): string => renderTable(JSON.parse(JSON.stringify([r])) as BenchRow[], meta).split('\n').find(l => l.startsWith('| v |'))!.split(' | ').at(-1)!
  assert.equal(cellOf(base), '5.30 of 7.01 (916 B) |')
  assert.equal(cellOf({ ...base, otlpSpansPerRequest: 0.07, otlpBytesPerRequest: 12, spansPerRequestUnloaded: NaN }), '0.07 (12 B) |')
  assert.equal(cellOf({ ...base, otlpSpansPerRequest: 0, otlpBytesPerRequest: 0, spansPerRequestUnloaded: NaN }), '0 |')
})

test('the bench receiver counts the spans of a real OTLP protobuf export request', () => {
  const exporter = new InMemorySpanExporter()
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const tracer = provider.getTracer('t')
  for (let i = 0; i < 5; i++) {
    const root = tracer.startSpan('root', { attributes: { i } })
    tracer.startSpan('child', {}, trace.setSpan(context.active(), root)).end()
    root.end()
  }
  const body = ProtobufTraceSerializer.serializeRequest(exporter.getFinishedSpans())!
  assert.equal(countSpans(body), 10)
  assert.equal(countSpans(ProtobufTraceSerializer.serializeRequest([])!), 0)
  assert.throws(() => countSpans(Buffer.from('{"resourceSpans":[]}')))
})

test('processes V8 left with a slow nextTick are counted under the table, per variant, and not claimed when not counted', () => {
  const meta: BenchMeta = { date: 'd', machine: 'm', method: 'x' }
  const base: BenchRow = {
    variant: 'v', route: 'GET /', rps: 1, rpsPerCpuSecond: 1, ratio: 0.9, ratioMin: 0.9, ratioMax: 0.9, p50Ms: 1, p99Ms: 1, peakRssMb: 1, windowsKept: '3/3 paired, 1/1 alone', otlpBytesPerRequest: 0, otlpSpansPerRequest: 0, spansPerRequestUnloaded: NaN,
    userUs: 1, kernelUs: 1, twinUserUs: 1, twinKernelUs: 1, addedUserUs: 0, addedKernelUs: 0
  }
  const line = (rows: BenchRow[]): string | undefined => renderTable(rows, meta).split('\n').find(l => l.startsWith('Processes V8 left'))
  const rows = [
    { ...base, slowProcesses: 2, slowTwins: 1 },
    { ...base, route: 'POST /echo 1 KiB', slowProcesses: 2, slowTwins: 1 },
    { ...base, variant: 'w', slowProcesses: 0, slowTwins: 0 },
    { ...base, variant: 'x', slowProcesses: 0, slowTwins: 1 }
  ]
  assert.match(line(rows)!, /: v: 2 of 3 \(bare twins: 1 of 3\); x: 0 of 3 \(bare twins: 1 of 3\)\.$/, 'once per variant, w (none) left out')
  assert.match(line([{ ...base, slowProcesses: 0, slowTwins: 0 }])!, /: none\.$/)
  assert.equal(line([base]), undefined, 'results from before the count: nothing said')
})
