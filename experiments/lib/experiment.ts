// What an experiment module provides: a name, a one-line hypothesis, default options (overridable as
// --key=value), a chart, and a run that returns one row per variant.
import type { Chart, Row } from './report.ts'

export interface Experiment<O extends Record<string, number> = Record<string, number>> {
  name: string
  hypothesis: string
  options: O
  chart: Chart
  /** `requests`: per-request detail for the JSON result (e.g. client and server joined), if the experiment has it. */
  run: (opts: O, progress: (line: string) => void) => Promise<{ rows: Row[], notes: string[], requests?: unknown[] }>
}

/** Declares an experiment with its option names typed from its defaults. */
export function experiment<O extends Record<string, number>> (e: Experiment<O>): Experiment<O> { return e }
