// npm run experiment -- <name> [--option=value …]   |   npm run experiment -- --list
// Starts the server with what the experiment needs, runs bounded load against 127.0.0.1, stops everything,
// prints a table and writes results/<name>-<timestamp>.json and .svg. GRAFANA_URL adds annotations.
import { cpus } from 'node:os'
import { accept } from './accept.ts'
import { eventLoop } from './event-loop.ts'
import { tls } from './tls.ts'
import { decode } from './decode.ts'
import { slowClient } from './slow-client.ts'
import { write } from './write.ts'
import { parse } from './parse.ts'
import type { Experiment } from './lib/experiment.ts'
import { printTable, writeResult } from './lib/report.ts'

// Each experiment checks its own option names; the runner only passes numbers by name.
const EXPERIMENTS: Array<Experiment<any>> = [accept, tls, slowClient, parse, decode, eventLoop, write]
const [name, ...rest] = process.argv.slice(2)

if (name === undefined || name === '--list') {
  for (const e of EXPERIMENTS) console.log(`${e.name.padEnd(12)} ${e.hypothesis}\n${' '.repeat(13)}options: ${Object.entries(e.options).map(([k, v]) => `--${k}=${v}`).join(' ')}`)
  process.exit(name === undefined ? 2 : 0)
}
const experiment = EXPERIMENTS.find(e => e.name === name)
if (experiment === undefined) {
  console.error(`no experiment "${name}"; npm run experiment -- --list`)
  process.exit(2)
}
const opts = { ...experiment.options }
for (const arg of rest) {
  const m = /^--([\w-]+)=(\d+(?:\.\d+)?)$/.exec(arg)
  if (m === null || !(m[1]! in opts)) {
    console.error(`unknown option ${arg}; ${experiment.name} takes ${Object.keys(opts).map(k => `--${k}=<number>`).join(' ')}`)
    process.exit(2)
  }
  opts[m[1]!] = Number(m[2])
}

console.log(`${experiment.name}: ${experiment.hypothesis}`)
let last = ''
const progress = (line: string): void => {
  if (process.stdout.isTTY) process.stdout.write(`\r${line.padEnd(last.length)}`)
  else console.log(line)
  last = line
}
const { rows, notes } = await experiment.run(opts, progress)
if (process.stdout.isTTY) process.stdout.write('\n')
printTable(rows)
for (const n of notes) console.log(`  ${n}`)
const files = writeResult({
  name: experiment.name,
  hypothesis: experiment.hypothesis,
  machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}`,
  date: new Date().toISOString(),
  rows,
  notes
}, experiment.chart)
console.log(`\nwrote ${files.json}\n      ${files.svg}`)
