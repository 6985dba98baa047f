// The stack's files, checked without a container engine: the dashboards are what grafana/dashboards.ts
// generates and every panel is labelled; Grafana's provisioning points at datasources and paths that exist;
// the compose file passes a real Compose validator and keeps its promises (pinned images, health-gated starts);
// the alerting rules pass promtool and their unit tests.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { parse } from 'yaml'
import { DASHBOARDS, JAEGER, PROMETHEUS, queriesOf, type Dashboard, type Panel } from '../../grafana/dashboards.ts'
import { METRIC, STAGES } from '../../src/journey/stages.ts'
import { alertRules, skipWithoutPrometheus } from '../helpers/prometheus.ts'

const root = new URL('../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')
const inCi = process.env.CI === 'true'

function panelsOf (d: Dashboard): Panel[] {
  const out: Panel[] = []
  const walk = (ps: Panel[]): void => { for (const p of ps) { out.push(p); walk(p.panels ?? []) } }
  walk(d.panels)
  return out
}

test('the committed dashboards are exactly what grafana/dashboards.ts generates (run `npm run dashboards`)', () => {
  for (const [file, build] of Object.entries(DASHBOARDS)) {
    assert.deepEqual(JSON.parse(read(`grafana/dashboards/${file}`)), build(), `grafana/dashboards/${file} is stale`)
  }
})

test('every panel has a description, a unit and the provisioned Prometheus datasource; ids and refIds are unique', () => {
  for (const build of Object.values(DASHBOARDS)) {
    const d = build()
    const ids = new Set<number>()
    for (const p of panelsOf(d)) {
      assert.ok(!ids.has(p.id), `${d.title}: duplicate panel id ${p.id}`)
      ids.add(p.id)
      if (p.type === 'row') continue
      assert.ok(p.description.length > 20, `${d.title} / ${p.title}: description`)
      assert.ok((p.fieldConfig as { defaults?: { unit?: string } }).defaults?.unit, `${d.title} / ${p.title}: unit`)
      assert.deepEqual(p.datasource, PROMETHEUS, `${d.title} / ${p.title}: datasource`)
      assert.ok((p.targets ?? []).length > 0, `${d.title} / ${p.title}: has queries`)
      const refs = (p.targets ?? []).map(t => t.refId)
      assert.ok(refs.every(r => typeof r === 'string' && r !== '') && new Set(refs).size === refs.length, `${d.title} / ${p.title}: every query has its own refId`)
    }
    const vars = (d.templating as { list: Array<{ name: string }> }).list.map(v => v.name)
    assert.ok(vars.includes('instance'), `${d.title}: instance variable`)
    for (const q of queriesOf(d)) assert.match(q.expr, /instance=~"\$instance"/, `${d.title} / ${q.panel}: filtered by instance`)
  }
})

test('the Request journey dashboard covers every stage, the share of time, errors, protocols, slowest routes and exemplars', () => {
  const d = DASHBOARDS['request-journey.json']()
  const all = queriesOf(d).map(q => q.expr).join('\n')
  assert.match(all, new RegExp(`${METRIC.stageDuration}_bucket`))
  // The share panel's maths is proven against a real Prometheus (prometheus.test.ts: its shares sum to 1).
  assert.match(all, new RegExp(`${METRIC.gapDuration}_sum`), 'share of time: stages and the gaps between them')
  assert.match(all, /topk\(10/, 'slowest routes')
  assert.match(all, /http_response_status_code=~"\[45\]\.\.", error_type!="aborted"/, 'errors by status class')
  assert.match(all, /error_type="aborted"/, 'requests cut off, whatever status they sent')
  assert.match(all, /sum by \(network_protocol_version, le\)/, 'request duration by protocol: HTTP/1.1 and HTTP/2 apart')
  const vars = (d.templating as { list: Array<{ name: string }> }).list.map(v => v.name)
  assert.deepEqual(vars, ['instance', 'route', 'stage'])
  const stageRow = panelsOf(d).find(p => p.type === 'row' && p.repeat === 'stage')
  assert.ok(stageRow, 'a row repeated per stage')
  assert.ok(panelsOf(d).some(p => p.type === 'heatmap'), 'a heatmap per stage')
  assert.ok(panelsOf(d).some(p => (p.targets ?? []).some(t => t.exemplar === true)), 'exemplars shown')
  const described = panelsOf(d).find(p => p.title === '$stage p50 / p95 / p99')!.description
  for (const s of STAGES) assert.match(described, new RegExp(`\\*\\*${s}\\*\\*`), `the stage panel explains ${s}`)
})

test('Grafana provisioning: stable uids, exemplars link to Jaeger, spans link to metrics, dashboards path mounted', () => {
  const ds = parse(read('grafana/provisioning/datasources/datasources.yml')) as { datasources: Array<Record<string, any>> }
  const prom = ds.datasources.find(d => d.type === 'prometheus')!
  const jaeger = ds.datasources.find(d => d.type === 'jaeger')!
  assert.equal(prom.uid, PROMETHEUS.uid)
  assert.equal(jaeger.uid, JAEGER.uid)
  assert.deepEqual(prom.jsonData.exemplarTraceIdDestinations, [{ name: 'traceId', datasourceUid: JAEGER.uid }])
  assert.equal(jaeger.jsonData.tracesToMetrics.datasourceUid, PROMETHEUS.uid)
  for (const q of jaeger.jsonData.tracesToMetrics.queries) assert.match(q.query, /\$\$__tags/, 'literal $ escaped as $$ in provisioning')
  const providers = parse(read('grafana/provisioning/dashboards/dashboards.yml')) as { providers: Array<{ options: { path: string } }> }
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, any> }
  const mounts: string[] = compose.services.grafana.volumes
  assert.ok(mounts.includes(`./grafana/dashboards:${providers.providers[0]!.options.path}:ro`), 'the provider reads the mounted dashboards')
  assert.ok(mounts.includes('./grafana/provisioning:/etc/grafana/provisioning:ro'))
  assert.equal(compose.services.grafana.environment.GF_AUTH_ANONYMOUS_ENABLED, 'true')
})

test('compose: every image pinned in .env, every start gated on health, published ports on localhost only', () => {
  const env = Object.fromEntries(read('.env').split('\n').filter(l => /^[A-Z_]+=/.test(l)).map(l => l.split('=', 2) as [string, string]))
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, any> }
  for (const [name, svc] of Object.entries(compose.services)) {
    const image: string = svc.image ?? svc.build?.args?.NODE_IMAGE
    const variable = /^\$\{([A-Z_]+)\}$/.exec(image)?.[1]
    assert.ok(variable, `${name}: image from .env, got ${image}`)
    assert.match(env[variable]!, /^[\w./-]+:[\w.-]*\d[\w.-]*$/, `${name}: ${variable} pinned to an exact tag`)
    assert.doesNotMatch(env[variable]!, /:latest$/)
    for (const port of svc.ports ?? []) assert.match(port, /^127\.0\.0\.1:/, `${name}: ${port} published on localhost only`)
    for (const [dep, cond] of Object.entries(svc.depends_on ?? {})) {
      const needsHealth = compose.services[dep].healthcheck !== undefined || dep === 'app'
      if (needsHealth) assert.equal((cond as { condition: string }).condition, 'service_healthy', `${name} waits for ${dep} to be healthy`)
    }
  }
  assert.equal(compose.services.app.ports, undefined, 'app replicas publish nothing (reached through lb)')
  assert.match(read('deploy/Dockerfile'), /^HEALTHCHECK /m)
  assert.match(read('deploy/Dockerfile'), /^USER node$/m)
  assert.match(read('deploy/prometheus/prometheus.yml'), /dns_sd_configs:\s*\n\s*- names: \[app\]/)
})

test('the image\'s build stage copies every module deploy/build.ts imports (no engine here builds the image)', () => {
  const imports = [...read('deploy/build.ts').matchAll(/from '\.\/([\w.-]+\.ts)'/g)].map(m => `deploy/${m[1]!}`)
  assert.ok(imports.length > 0, 'deploy/build.ts imports a module of its own')
  const copied = read('deploy/Dockerfile').split('\n').filter(l => l.startsWith('COPY ')).flatMap(l => l.split(/\s+/).slice(1, -1))
  for (const file of imports) assert.ok(copied.includes(file), `deploy/Dockerfile copies ${file} before RUN node deploy/build.ts`)
})

test('alerting rules: each has a severity, a summary and a description, is tested firing, and is mounted beside the config in compose', () => {
  const rules = alertRules()
  assert.ok(rules.length >= 8)
  for (const r of rules) {
    assert.ok(['critical', 'warning', 'info'].includes(r.labels?.severity ?? ''), `${r.alert}: severity`)
    assert.ok((r.annotations?.summary ?? '').length > 10 && (r.annotations?.description ?? '').length > 40, `${r.alert}: summary and description`)
  }
  type Case = { alertname: string, exp_alerts?: unknown[] }
  const tests = parse(read('deploy/prometheus/alerts.test.yml')) as { rule_files: string[], tests: Array<{ alert_rule_test: Case[] }> }
  assert.deepEqual(tests.rule_files, ['alerts.yml'])
  const cases = tests.tests.flatMap(t => t.alert_rule_test)
  for (const r of rules) {
    assert.ok(cases.some(c => c.alertname === r.alert && (c.exp_alerts ?? []).length > 0), `${r.alert}: a unit test where it fires`)
    assert.ok(cases.some(c => c.alertname === r.alert && (c.exp_alerts ?? []).length === 0), `${r.alert}: a unit test where it does not`)
  }
  // JourneyStageDominates weighs every stage of the request's time but the handler: the list must follow STAGES
  // (accept and TLS are the connection's, outside http_server_request_duration_seconds).
  const dominates = rules.find(r => r.alert === 'JourneyStageDominates')!
  const listed = /stage=~"([a-z|]+)"/.exec(dominates.expr)?.[1]?.split('|')
  assert.deepEqual(listed, STAGES.filter(s => !['accept', 'tls', 'handler'].includes(s)), 'JourneyStageDominates: the stages inside request time, but the handler')
  assert.deepEqual((parse(read('deploy/prometheus/prometheus.yml')) as { rule_files: string[] }).rule_files, ['alerts.yml'])
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, any> }
  assert.ok(compose.services.prometheus.volumes.includes('./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'), 'mounted where the config names it')
})

test('alerting rules: promtool checks them, and their unit tests pass (promtool test rules)', { skip: skipWithoutPrometheus }, () => {
  const run = (...args: string[]): string => execFileSync('promtool', args, { cwd: root, encoding: 'utf8' })
  assert.match(run('check', 'rules', 'deploy/prometheus/alerts.yml'), /SUCCESS: \d+ rules found/)
  // Exits non-zero, with what it expected and got, when a case fails.
  assert.match(run('test', 'rules', 'deploy/prometheus/alerts.test.yml'), /SUCCESS/)
})

test('compose: the file passes a real Compose validator (docker compose, or Debian\'s docker-compose)', (ctx) => {
  const cli = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0
    ? ['docker', 'compose']
    : existsSync('/usr/bin/docker-compose') ? ['docker-compose'] : undefined
  if (cli === undefined) {
    if (inCi) assert.fail('no Compose CLI: .ci/run installs Debian\'s docker-compose')
    ctx.skip('no Compose CLI here (apt-get install docker-compose); the structural checks above still ran')
    return
  }
  // `config` resolves .env, merges anchors and validates against the Compose schema; it exits non-zero on error.
  const out = execFileSync(cli[0]!, [...cli.slice(1), '--profile', 'load', 'config', '--services'], { cwd: root, encoding: 'utf8' })
  assert.deepEqual(out.trim().split('\n').sort(), ['app', 'grafana', 'jaeger', 'lb', 'load', 'prometheus'])
  const resolved = parse(execFileSync(cli[0]!, [...cli.slice(1), 'config'], { cwd: root, encoding: 'utf8' })) as { services: Record<string, any> }
  assert.match(resolved.services.jaeger.image, /^jaegertracing\/jaeger:2\.\d+\.\d+$/, 'the pins in .env are applied')
})
