// npm run experiment -- <name> [--option=value …] [--url=… [--https-url=…] [--metrics-url=…]]
// npm run experiment -- --list
// Starts the server with what the experiment needs, runs bounded load against 127.0.0.1, stops everything,
// prints a table and writes results/<name>-<timestamp>.json and .svg. GRAFANA_URL adds annotations.
// With --url the load goes to a server you run (e.g. the compose stack) and its --metrics-url is scraped.
import { cpus } from 'node:os'
import { accept } from './accept.ts'
import { eventLoop } from './event-loop.ts'
import { tls } from './tls.ts'
import { decode } from './decode.ts'
import { slowClient } from './slow-client.ts'
import { write } from './write.ts'
import { parse } from './parse.ts'
import { hooks } from './hooks.ts'
import { serialize } from './serialize.ts'
import { errors } from './errors.ts'
import { http2 } from './http2.ts'
import type { Experiment } from './lib/experiment.ts'
import { printTable, writeResult } from './lib/report.ts'
import { configurable, unappliedConfig, useTarget } from './lib/server.ts'

// Each experiment checks its own option names; the runner only passes numbers by name.
const EXPERIMENTS: Array<Experiment<any>> = [accept, tls, slowClient, parse, decode, hooks, errors, eventLoop, serialize, write, http2]
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
const urls: Record<string, URL> = {}
for (const arg of rest) {
  const u = /^--(url|https-url|metrics-url)=(.+)$/.exec(arg)
  if (u !== null) {
    const parsed = URL.parse(u[2]!)
    if (parsed === null || !/^https?:$/.test(parsed.protocol)) {
      console.error(`--${u[1]!} must be an http(s) URL, got "${u[2]!}"`)
      process.exit(2)
    }
    urls[u[1]!] = parsed
    continue
  }
  const m = /^--([\w-]+)=(\d+(?:\.\d+)?)$/.exec(arg)
  if (m === null || !(m[1]! in opts)) {
    console.error(`unknown option ${arg}; ${experiment.name} takes ${Object.keys(opts).map(k => `--${k}=<number>`).join(' ')} --url=<http URL> --https-url=<https URL> --metrics-url=<URL of /metrics>`)
    process.exit(2)
  }
  opts[m[1]!] = Number(m[2])
}

if (urls['https-url'] !== undefined || urls['metrics-url'] !== undefined) {
  if (urls.url === undefined) {
    console.error('--https-url and --metrics-url go with --url (the target\'s HTTP address)')
    process.exit(2)
  }
}
if (urls.url !== undefined) {
  // The server's own defaults: metrics on port 9464 of the same host.
  const metricsUrl = urls['metrics-url'] ?? new URL(`http://${urls.url.host.replace(/:\d+$/, '')}:9464/metrics`)
  useTarget({ url: urls.url, httpsUrl: urls['https-url'], metricsUrl })
  const ok = await fetch(metricsUrl).then(r => r.ok, () => false)
  if (!ok) {
    console.error(`cannot scrape ${metricsUrl.href}: the experiment reads the server's side from there (--metrics-url)`)
    process.exit(2)
  }
}

console.log(`${experiment.name}: ${experiment.hypothesis}`)
let last = ''
const progress = (line: string): void => {
  if (process.stdout.isTTY) process.stdout.write(`\r${line.padEnd(last.length)}`)
  else console.log(line)
  last = line
}
const { rows, notes, requests } = await experiment.run(opts, progress).catch((err: Error) => {
  if (process.stdout.isTTY) process.stdout.write('\n')
  console.error(`${experiment.name} failed: ${err.message}`)
  process.exit(1)
})
if (!configurable()) {
  notes.push(`Target: ${urls.url!.href} (metrics ${urls['metrics-url']?.href ?? 'port 9464'}); nothing was started.`)
  const asked = unappliedConfig()
  if (asked.length > 0) notes.push(`Not applied to the target (it runs its own configuration): ${asked.join(' ')}.`)
}
if (process.stdout.isTTY) process.stdout.write('\n')
printTable(rows)
for (const n of notes) console.log(`  ${n}`)
const files = writeResult({
  name: experiment.name,
  hypothesis: experiment.hypothesis,
  machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}`,
  date: new Date().toISOString(),
  rows,
  notes,
  requests
}, experiment.chart)
console.log(`\nwrote ${files.json}\n      ${files.svg}`)
