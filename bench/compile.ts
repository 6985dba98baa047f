// The bench's servers run as production runs the app: compiled to JavaScript (as `npm run build` and the
// Docker image do), not through Node's TypeScript stripper. Every isolate that loads a .ts file starts the
// stripper, ≈ 18–20 MB of RSS here that no production server carries; every variant paid it alike, so it
// moved no ratio, only the peak-RSS column (bench/NOTES.md, thirty-second session).
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { copyRuntimeFiles } from '../deploy/runtime-files.ts'

/**
 * Node flag for every compiled server: should anything still load a .ts file (an import the compiler did not
 * rewrite, a worker's entry), the server fails to start, saying which file, instead of quietly starting the
 * stripper again. Worker threads inherit it.
 */
export const NO_STRIPPER = '--no-experimental-strip-types'

const OUT_PREFIX = '.dist-bench-'
const built = new Map<string, string>()

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * bench/server.ts of `checkout`, compiled with that checkout's own TypeScript into `<checkout>/.dist-bench-PID/`
 * (in the checkout, so its node_modules and its TCP_INFO addon resolve as from src/), once per process;
 * the folder is removed when this process exits, and a dead process's left behind is removed here.
 * Returns the compiled entry, bench/server.js.
 */
export function compiledServer (checkout: string): string {
  const done = built.get(checkout)
  if (done !== undefined) return done
  for (const name of readdirSync(checkout)) {
    const pid = name.startsWith(OUT_PREFIX) ? Number(name.slice(OUT_PREFIX.length)) : NaN
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) rmSync(join(checkout, name), { recursive: true, force: true })
  }
  const out = join(checkout, `${OUT_PREFIX}${process.pid}`)
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out)
  process.on('exit', () => rmSync(out, { recursive: true, force: true }))
  // The checkout's own compiler options (tsconfig.json), emitting; all of src/ for the worker entries that
  // are loaded by URL (src/otlp-worker-thread.js, src/app/compute-worker.js), which no import reaches.
  writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
    extends: '../tsconfig.json',
    compilerOptions: { noEmit: false, rewriteRelativeImportExtensions: true, rootDir: '..', outDir: '.' },
    files: ['../bench/server.ts'],
    include: ['../src']
  }))
  const tsc = createRequire(join(checkout, 'package.json')).resolve('typescript/bin/tsc')
  console.error(`compiling ${join(checkout, 'bench', 'server.ts')} and its src/ to JavaScript in ${out} (bench/compile.ts) …`)
  execFileSync(process.execPath, [tsc, '-p', join(out, 'tsconfig.json')], { stdio: ['ignore', 'inherit', 'inherit'] })
  // What src/ reads next to its code at run time, and the addon at ../../native from src/journey/.
  copyRuntimeFiles(join(checkout, 'src'), join(out, 'src'))
  symlinkSync(join('..', 'native'), join(out, 'native'))
  const entry = join(out, 'bench', 'server.js')
  built.set(checkout, entry)
  return entry
}
