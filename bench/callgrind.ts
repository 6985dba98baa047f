// Pure helpers for bench/instructions.ts: read callgrind's per-function instruction counts and name the
// V8-compiled JavaScript in them from Node's --perf-basic-prof map.
//
// Why by hand: callgrind names native code from symbols, but JIT-compiled JavaScript has none, so
// callgrind_annotate prints it as `???:0x…`. Node writes where it put each compiled function to
// /tmp/perf-PID.map (the format perf uses); nothing else joins the two.

/** One line of a perf map: code at [start, start + size) is `name` (V8: `JS:*'fn file:line:col`, `*` = TurboFan). */
export interface PerfSymbol { start: number, size: number, name: string }

export function parsePerfMap (text: string): PerfSymbol[] {
  const out: PerfSymbol[] = []
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.+)$/i.exec(line)
    if (m !== null) out.push({ start: parseInt(m[1]!, 16), size: parseInt(m[2]!, 16), name: m[3]! })
  }
  return out.sort((a, b) => a.start - b.start)
}

/** The symbol covering `address` (the last one that starts at or before it), or undefined. */
export function symbolAt (symbols: readonly PerfSymbol[], address: number): string | undefined {
  let lo = 0
  let hi = symbols.length - 1
  let best: PerfSymbol | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (symbols[mid]!.start <= address) { best = symbols[mid]; lo = mid + 1 } else hi = mid - 1
  }
  return best !== undefined && address < best.start + best.size ? best.name : undefined
}

/** `totals: N` (or, without one, `summary: N`) of a callgrind output file: instructions executed in that part. */
export function callgrindTotal (text: string): number {
  const ir = callgrindEvents(text).get('Ir')
  if (ir === undefined) throw new Error('not a callgrind output file (no Ir in its totals line)')
  return ir
}

/**
 * Every event of a part's totals line by name, from its `events:` line: `Ir` alone by default; with
 * `--cache-sim=yes` also data reads and writes (`Dr`, `Dw`) and the simulated cache's misses (`D1mr`, `D1mw`
 * for the first-level data cache, `DLmr`, `DLmw` for the last level, `I1mr`, `ILmr` for instructions).
 */
export function callgrindEvents (text: string): Map<string, number> {
  const names = /^events: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/)
  // `totals:` (the sum of the part's listed costs, what valgrind prints as "Collected") over `summary:`,
  // which can differ from it by a few instructions with --cache-sim=yes.
  const counts = (/^totals: (.+)$/m.exec(text) ?? /^summary: (.+)$/m.exec(text))?.[1]?.trim().split(/\s+/)
  if (names === undefined || counts === undefined) throw new Error('not a callgrind output file (no events or totals line)')
  // callgrind leaves trailing zero events out of a totals line.
  return new Map(names.map((name, i) => [name, Number(counts[i] ?? 0)]))
}

/**
 * Per-function exclusive instruction counts from `callgrind_annotate --threshold=100` output, with JIT
 * addresses named from the perf map (V8 tier marker and all) and native names shortened to the function.
 * Functions that share a name after that (V8 recompiles a function at a new address) are added up.
 */
export function functionCosts (annotate: string, symbols: readonly PerfSymbol[]): Map<string, number> {
  const costs = new Map<string, number>()
  for (const line of annotate.split('\n')) {
    const m = /^\s*([\d,]+) \([^)]*\)\s+(\S.*)$/.exec(line)
    if (m === null || m[2]!.startsWith('PROGRAM TOTALS')) continue
    const count = Number(m[1]!.replace(/,/g, ''))
    const jit = /^\?\?\?:0x([0-9a-f]+)/i.exec(m[2]!)
    const name = jit !== null
      ? symbolAt(symbols, parseInt(jit[1]!, 16)) ?? '(JIT code not in the perf map)'
      : shortNative(m[2]!)
    costs.set(name, (costs.get(name) ?? 0) + count)
  }
  return costs
}

/**
 * `???:v8::internal::Foo::Bar(args) const [/path/node]` → `v8::internal::Foo::Bar`; `file.c:fn [obj]` → `fn`.
 * The argument list is the last bracketed group, found from the end: names themselves may hold brackets
 * (`v8::internal::(anonymous namespace)::Invoke(…)`).
 */
export function shortNative (s: string): string {
  const name = s.replace(/(?: \[[^\]]*\])+$/, '').replace(/^[^:]*\.(?:c|cc|h|S):/, '').replace(/^\?\?\?:/, '').replace(/(?: const)?('\d+)?$/, '$1')
  const suffix = /'\d+$/.exec(name)?.[0] ?? '' // callgrind's recursion marker
  const body = name.slice(0, name.length - suffix.length)
  if (!body.endsWith(')')) return name
  let depth = 0
  for (let i = body.length - 1; i >= 0; i--) {
    if (body[i] === ')') depth++
    else if (body[i] === '(' && --depth === 0) return i > 0 ? body.slice(0, i) + suffix : name
  }
  return name
}

/** Where `b` spends more (or fewer) instructions per request than `a`, biggest differences first. */
export function costDiff (a: Map<string, number>, b: Map<string, number>, requestsA: number, requestsB: number, top: number): Array<{ name: string, a: number, b: number, added: number }> {
  const names = new Set([...a.keys(), ...b.keys()])
  return [...names]
    .map(name => {
      const x = (a.get(name) ?? 0) / requestsA
      const y = (b.get(name) ?? 0) / requestsB
      return { name, a: x, b: y, added: y - x }
    })
    .sort((p, q) => Math.abs(q.added) - Math.abs(p.added))
    .slice(0, top)
}

