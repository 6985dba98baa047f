// A real Prometheus (Debian's package) scraping a server under test with the shipped config, only the
// target rewritten to this host. Tests that need it skip with a reason when it is not installed locally;
// CI installs it, so there they run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { freePort } from '../../experiments/lib/server.ts'

const PROMETHEUS = '/usr/bin/prometheus'
const PROMTOOL = '/usr/bin/promtool'
const missing = [PROMETHEUS, PROMTOOL].filter(p => !existsSync(p))

/** `skip` for node:test: false, or why these tests cannot run here. */
export const skipWithoutPrometheus: string | false = missing.length > 0 && process.env.CI !== 'true'
  ? `no ${missing.join(', ')} here (apt-get install prometheus); CI installs it and runs this test`
  : false

export interface Prometheus {
  url: string
  /** GET an HTTP API path; throws with Prometheus's own error unless the status is success. */
  api: (path: string, params: Record<string, string>) => Promise<any>
  stop: () => void
}

/** Starts Prometheus with deploy/prometheus/prometheus.yml (and its alerting rules) scraping `target` (host:port); `scrapeInterval` overrides the shipped one. */
export async function startPrometheus (target: string, scrapeInterval?: string): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'journey-prometheus-'))
  const config = parse(readFileSync(new URL('../../deploy/prometheus/prometheus.yml', import.meta.url), 'utf8'))
  const job = config.scrape_configs.find((j: { job_name: string }) => j.job_name === 'request-journey')
  delete job.dns_sd_configs
  job.static_configs = [{ targets: [target] }]
  if (scrapeInterval !== undefined) config.global.scrape_interval = scrapeInterval
  config.scrape_configs = config.scrape_configs.filter((j: { job_name: string }) => j.job_name !== 'jaeger')
  // Rule files are named relative to the config, so they go beside its copy.
  for (const rules of config.rule_files ?? []) copyFileSync(new URL(`../../deploy/prometheus/${rules}`, import.meta.url), join(dir, rules))
  const file = join(dir, 'prometheus.yml')
  writeFileSync(file, stringify(config))
  execFileSync(PROMTOOL, ['check', 'config', file], { stdio: 'pipe' })

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child: ChildProcess = spawn(PROMETHEUS, [
    `--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--enable-feature=exemplar-storage', '--log.level=warn'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (d: Buffer) => { log += d.toString() })
  const stop = (): void => { child.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }) }
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) { stop(); throw new Error(`prometheus exited: ${log}`) }
    if (await fetch(`${url}/-/ready`).then(r => r.ok, () => false)) break
    if (i > 100) { stop(); throw new Error(`prometheus not ready: ${log}`) }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  return {
    url,
    async api (path, params) {
      const res = await fetch(`${url}${path}?${new URLSearchParams(params)}`)
      const json = await res.json() as { status: string, error?: string, data: any }
      if (json.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${json.error}`)
      return json.data
    },
    stop
  }
}

export interface AlertRule { alert: string, expr: string, for?: string, labels?: { severity?: string }, annotations?: { summary?: string, description?: string } }

/** The alerting rules shipped in deploy/prometheus/alerts.yml, every group's. */
export function alertRules (): AlertRule[] {
  const file = parse(readFileSync(new URL('../../deploy/prometheus/alerts.yml', import.meta.url), 'utf8')) as { groups: Array<{ rules: AlertRule[] }> }
  return file.groups.flatMap(g => g.rules)
}

/** Grafana's variables as an "All" selection would expand them, and $__rate_interval for a short scrape interval. */
export function expand (expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replace(/\$(instance|route|stage)\b/g, '.*')
}
