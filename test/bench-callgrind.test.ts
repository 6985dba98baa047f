// bench/instructions.ts names JIT-compiled JavaScript in callgrind's counts through Node's perf map. Checked
// on a real valgrind run of a real node, since the join depends on both tools' output formats.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { callgrindEvents, callgrindTotal, costDiff, functionCosts, parsePerfMap, shortNative, symbolAt } from '../bench/callgrind.ts'

test('perf map lookup: a symbol covers [start, start + size), nothing between symbols', () => {
  const symbols = parsePerfMap('2000 10 JS:*second a.js:1:1\n1000 20 JS:*first a.js:1:1\nnot a line\n')
  assert.equal(symbolAt(symbols, 0x1000), 'JS:*first a.js:1:1')
  assert.equal(symbolAt(symbols, 0x101f), 'JS:*first a.js:1:1')
  assert.equal(symbolAt(symbols, 0x1020), undefined)
  assert.equal(symbolAt(symbols, 0x2005), 'JS:*second a.js:1:1')
  assert.equal(symbolAt(symbols, 0xfff), undefined)
})

test('native names lose their argument list, not the brackets inside the name', () => {
  assert.equal(shortNative('???:v8::internal::(anonymous namespace)::Invoke(v8::internal::Isolate*, v8::internal::(anonymous namespace)::InvokeParams const&) [/x/node]'), 'v8::internal::(anonymous namespace)::Invoke')
  assert.equal(shortNative('???:v8::internal::HeapObject::SizeFromMap(v8::internal::Tagged<v8::internal::Map>) const [/x/node]'), 'v8::internal::HeapObject::SizeFromMap')
  assert.equal(shortNative('???:Builtins_CallFunction_ReceiverIsAny\'2 [/x/node]'), 'Builtins_CallFunction_ReceiverIsAny\'2')
  assert.equal(shortNative('./time/../sysdeps/unix/sysv/linux/clock_gettime.c:clock_gettime@@GLIBC_2.17 [/lib/libc.so.6]'), 'clock_gettime@@GLIBC_2.17')
  assert.equal(shortNative('???:std::deque<v8::Local<v8::Object>*>::_M_default_append(unsigned long) [clone .part.0] [/x/node]'), 'std::deque<v8::Local<v8::Object>*>::_M_default_append')
})

test('costDiff: per request, biggest differences first, either sign', () => {
  const a = new Map([['x', 1000], ['y', 5000]])
  const b = new Map([['x', 4000], ['z', 200], ['y', 1000]])
  assert.deepEqual(costDiff(a, b, 10, 10, 2).map(d => [d.name, d.added]), [['y', -400], ['x', 300]])
})

test('callgrindEvents: the totals line by event name (not the summary, which can differ), trailing zero events read as 0', () => {
  const part = 'version: 1\ncreator: callgrind-3.19.0\npart: 2\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nsummary: 927 300 200 6 12 5\n\nfn=(1) x\n1 900 300 200 4 12 5\n\ntotals: 900 300 200 4 12 5\n'
  const events = callgrindEvents(part)
  assert.deepEqual([...events], [['Ir', 900], ['Dr', 300], ['Dw', 200], ['I1mr', 4], ['D1mr', 12], ['D1mw', 5], ['ILmr', 0], ['DLmr', 0], ['DLmw', 0]])
  assert.equal(callgrindTotal(part), 900)
  assert.throws(() => callgrindEvents('fn=(1) x\n'), /not a callgrind output file/)
})

const hasValgrind = spawnSync('which', ['valgrind', 'callgrind_annotate']).status === 0
// bench:instructions profiles the Node the project targets (24, as CI runs). Under valgrind, Node 22's V8
// runs this loop in its interpreter (45 % of the instructions in InterpreterEntryTrampoline, checked on
// 22.23.3), so there is no compiled hot function to name.
const nodeMajor = Number(process.versions.node.split('.')[0])
const skipReason = !hasValgrind
  ? 'valgrind is not installed (apt-get install valgrind): .ci/run installs it'
  : nodeMajor < 24 ? `Node ${process.versions.node}: its V8 leaves this loop to the interpreter under valgrind (bench:instructions targets Node 24)` : false
test('a real callgrind run of node: JIT-compiled functions are named from the perf map, and the totals line is read', { skip: skipReason }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'callgrind-test-'))
  const script = join(dir, 'hot.mjs')
  // A function hot enough for TurboFan, doing work no builtin does for it. Compiled on the main thread: under
  // valgrind, which runs one thread at a time, a background compile job barely runs (bench/instructions.ts).
  writeFileSync(script, 'function journeyHotLoop (n) { let s = 0; for (let i = 0; i < n; i++) s = (s * 31 + i) | 0; return s }\n' +
    'let t = 0; for (let k = 0; k < 400; k++) t += journeyHotLoop(20000)\nconsole.log(t)\n')
  const out = join(dir, 'cg.out')
  // In dir: Node 24's --perf-basic-prof also writes V8's isolate-*.log into its working directory.
  const run = spawnSync('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--perf-basic-prof', '--no-concurrent-recompilation', script], { encoding: 'utf8', cwd: dir })
  assert.equal(run.status, 0, run.stderr)
  const collected = Number(/Collected : (\d+)/.exec(run.stderr)?.[1])
  const pid = Number(/==(\d+)==/.exec(run.stderr)?.[1])
  assert.equal(callgrindTotal(readFileSync(out, 'utf8')), collected)
  const annotate = execFileSync('callgrind_annotate', ['--threshold=100', out], { encoding: 'utf8', maxBuffer: 1 << 28 })
  const costs = functionCosts(annotate, parsePerfMap(readFileSync(`/tmp/perf-${pid}.map`, 'utf8')))
  const hot = [...costs].filter(([name]) => name.includes('journeyHotLoop'))
  assert.ok(hot.length > 0, 'the hot function is named')
  const hotTotal = hot.reduce((s, [, c]) => s + c, 0)
  // 400 × 20000 iterations of a few instructions each: most of what the loop itself executed.
  assert.ok(hotTotal > 400 * 20000 * 3, `journeyHotLoop: ${hotTotal} instructions`)
  assert.ok(hot.some(([name]) => name.startsWith('JS:*')), 'and TurboFan compiled it')
  assert.ok([...costs.keys()].some(name => name.startsWith('Builtins_') || name.startsWith('v8::')), 'native code keeps its symbol names')
})

test('a real callgrind run with --cache-sim=yes: the data cache misses of a strided walk are read by event name', { skip: skipReason }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'callgrind-test-'))
  const script = join(dir, 'walk.mjs')
  // 64 MiB read one 64-byte line at a time: every read misses a 48 KiB first level and a 1 MiB last level.
  writeFileSync(script, 'const a = new Float64Array(8 << 20); let s = 0\nfor (let i = 0; i < a.length; i += 8) s += a[i]\nconsole.log(s)\n')
  const out = join(dir, 'cg.out')
  const run = spawnSync('valgrind', ['--tool=callgrind', '--cache-sim=yes', '--LL=1048576,8,64', `--callgrind-out-file=${out}`, process.execPath, script], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  const events = callgrindEvents(readFileSync(out, 'utf8'))
  assert.equal(events.get('Ir'), Number(/Collected : (\d+)/.exec(run.stderr)?.[1]))
  const lines = (64 << 20) / 64
  // The walk's reads miss once per line; zeroing the array first misses about as often, counted as writes.
  assert.ok(events.get('D1mr')! >= lines, `D1 read misses ${events.get('D1mr')} for ${lines} lines`)
  assert.ok(events.get('DLmr')! >= lines * 0.9, `last-level read misses ${events.get('DLmr')}`)
})
