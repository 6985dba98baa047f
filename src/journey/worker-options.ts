// Options for the worker threads the journey (and the demo's exporter) start for their own code.
//
// Why: a worker inherits the process's Node options, and with them its preloads. A CommonJS preload runs in
// every worker (`node -r @opentelemetry/auto-instrumentations-node/register app.js`, or the same in
// NODE_OPTIONS): a second OpenTelemetry SDK would start in a thread that serves nothing, and in the
// exporter's thread it would trace the exporter's own requests. (An `--import` preload runs in the main
// thread only, but is left out as well.) Only the preloads are taken out: the rest must stay, above all the
// permission model's flags — a worker given no options at all, or an empty NODE_OPTIONS, runs outside the
// permission model the process was started under.
import { Worker, type WorkerOptions } from 'node:worker_threads'

const PRELOADS = ['-r', '--require', '--import']

function isPreload (arg: string): 'with-value' | 'alone' | false {
  if (PRELOADS.includes(arg)) return 'with-value'
  return PRELOADS.some(p => arg.startsWith(`${p}=`)) ? 'alone' : false
}

/** Node options without their preloads (`-r x`, `--require x`, `--require=x`, `--import x`, `--import=x`). */
export function withoutPreloads (args: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const kind = isPreload(args[i]!)
    if (kind === 'with-value') i++
    else if (kind === false) out.push(args[i]!)
  }
  return out
}

/**
 * NODE_OPTIONS split as Node splits it (node_options.cc): on spaces, except inside double quotes, where a
 * backslash takes the next character as it is.
 */
export function splitNodeOptions (value: string): string[] {
  const out: string[] = []
  let current: string | undefined
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    let c = value[i]!
    if (c === '\\' && quoted && i + 1 < value.length) {
      c = value[++i]!
    } else if (c === '"') {
      quoted = !quoted
      current ??= ''
      continue
    } else if (c === ' ' && !quoted) {
      if (current !== undefined) out.push(current)
      current = undefined
      continue
    }
    current = (current ?? '') + c
  }
  if (current !== undefined) out.push(current)
  return out
}

/** The inverse of splitNodeOptions: arguments with spaces, quotes or backslashes quoted. */
export function joinNodeOptions (args: readonly string[]): string {
  return args.map(a => /[\s"\\]/.test(a) || a === '' ? `"${a.replace(/["\\]/g, m => `\\${m}`)}"` : a).join(' ')
}

/**
 * execArgv and env for a worker of our own, each set only where the process's holds a preload: the
 * process's options without their preloads. Without preloads, nothing is set and the worker starts as Node
 * starts one by default (an explicit execArgv is checked where the inherited one is not: below).
 */
export function ownWorkerOptions (execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): Pick<WorkerOptions, 'execArgv' | 'env'> {
  const opts: Pick<WorkerOptions, 'execArgv' | 'env'> = {}
  const args = withoutPreloads(execArgv)
  if (args.length !== execArgv.length) opts.execArgv = args
  if (env.NODE_OPTIONS !== undefined) {
    const all = splitNodeOptions(env.NODE_OPTIONS)
    const kept = withoutPreloads(all)
    if (kept.length !== all.length) opts.env = { ...env, NODE_OPTIONS: joinNodeOptions(kept) }
  }
  return opts
}

/**
 * `new Worker` for our own code, without the app's preloads (ownWorkerOptions). Node refuses an explicit
 * execArgv that holds an option it applies per process (--max-old-space-size, --stack-size…), which it
 * ignores when the worker inherits them: it names them, and they are left out too (they apply to the whole
 * process anyway). Should that fail as well, the worker starts as by default, preloads and all, rather than
 * not at all.
 */
export function startOwnWorker (entry: string | URL, options: WorkerOptions): Worker {
  const own = ownWorkerOptions()
  if (own.execArgv === undefined && own.env === undefined) return new Worker(entry, options)
  try {
    return new Worker(entry, { ...options, ...own })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err
    const refused = refusedOptions((err as Error).message)
    if (own.execArgv !== undefined && refused.length > 0) {
      try {
        return new Worker(entry, { ...options, ...own, execArgv: own.execArgv.filter(a => !refused.includes(a)) })
      } catch (again) {
        if ((again as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw again
      }
    }
    return new Worker(entry, options)
  }
}

/** The options named in Node's "Initiated Worker with invalid execArgv flags: a, b" (none if it says otherwise). */
export function refusedOptions (message: string): string[] {
  const m = /invalid execArgv flags: (.*)$/.exec(message)
  return m === null ? [] : m[1]!.split(', ')
}
