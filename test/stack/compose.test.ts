// The whole compose stack, up for real with testcontainers, where a container engine can pull images:
// requests over HTTP and HTTPS reach Jaeger as traces with every stage span, Prometheus has scraped the stage
// histograms, and Grafana is healthy with both dashboards provisioned.
//
// Where no engine is reachable, the `docker compose` v2 CLI testcontainers drives is missing, or the images
// cannot be pulled (this project's CI: no registry), the test is skipped with the reason printed — never
// passed. REQUIRE_CONTAINERS=1 turns those skips into failures.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { after, test } from 'node:test'
import { DockerComposeEnvironment, getContainerRuntimeClient, ImageName, Wait, type StartedDockerComposeEnvironment } from 'testcontainers'
import { Agent, request } from 'undici'
import { composePortsTurn, pins, run, skipContainerTest } from '../helpers/stand-in-images.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** Why the stack cannot come up here, or undefined when it can. */
async function whyNot (): Promise<string | undefined> {
  let client
  try {
    client = await getContainerRuntimeClient()
  } catch (err) {
    const engine = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' })
    if (engine.status !== 0) return `no container engine reachable (${(err as Error).message.split('\n')[0]})`
    const bridge = spawnSync('docker', ['network', 'inspect', 'bridge'], { stdio: 'ignore' }).status === 0
    // Said too when it holds: a bridge alone would not bring the stack up without its images.
    const pull = run('docker', ['pull', '--quiet', pins.JAEGER_IMAGE!], { timeoutMs: 60_000 })
    return `a Docker engine ${engine.stdout.trim()} answers, but testcontainers cannot use it` +
      (bridge ? ` (${(err as Error).message.split('\n')[0]})` : ': it has no default bridge network (started with --bridge=none?)') +
      (pull.status === 0 ? '' : `; and image ${pins.JAEGER_IMAGE} cannot be pulled (${(pull.error?.message ?? pull.stderr).trim().split('\n')[0]!.slice(0, 160)})`)
  }
  const reasons: string[] = []
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status !== 0) {
    reasons.push('the `docker compose` v2 CLI that testcontainers drives is not installed')
  }
  for (const image of [pins.JAEGER_IMAGE, pins.GRAFANA_IMAGE, pins.PROMETHEUS_IMAGE, pins.HAPROXY_IMAGE, pins.NODE_IMAGE]) {
    try {
      const pull = client.image.pull(ImageName.fromString(image!))
      await Promise.race([pull, new Promise((_resolve, reject) => setTimeout(() => reject(new Error('no answer in 60 s')), 60_000).unref())])
    } catch (err) {
      reasons.push(`image ${image} cannot be pulled (${(err as Error).message.split('\n')[0]!.slice(0, 160)})`)
      break
    }
  }
  return reasons.length === 0 ? undefined : `engine ${client.info.containerRuntime.serverVersion} reachable, but ${reasons.join('; and ')}`
}

let stack: StartedDockerComposeEnvironment | undefined
let release: (() => void) | undefined
after(async () => { await stack?.down({ timeout: 10_000, removeVolumes: true }); release?.() })

async function poll<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 1000))
  }
}

test('docker compose up: traces with every stage in Jaeger, stage histograms in Prometheus, dashboards in Grafana', { timeout: 15 * 60_000 }, async (ctx) => {
  const reason = await whyNot()
  if (reason !== undefined) {
    skipContainerTest(ctx, 'compose stack test', reason)
    return
  }
  release = await composePortsTurn()
  stack = await new DockerComposeEnvironment(root, 'docker-compose.yml')
    .withBuild()
    .withWaitStrategy('app-1', Wait.forHealthCheck())
    .withWaitStrategy('jaeger-1', Wait.forHealthCheck())
    .withWaitStrategy('prometheus-1', Wait.forHealthCheck())
    .withWaitStrategy('grafana-1', Wait.forHealthCheck())
    .withStartupTimeout(5 * 60_000)
    .up()

  const started = new Date()
  // Fresh connections, so accept and the TLS handshake are part of these requests' traces.
  for (let i = 0; i < 5; i++) {
    for (const base of ['http://127.0.0.1:3000', 'https://127.0.0.1:3443']) {
      const dispatcher = new Agent({ connect: { rejectUnauthorized: false }, pipelining: 0 })
      const r = await request(`${base}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"message":"compose"}', dispatcher })
      assert.equal(r.statusCode, 200)
      await r.body.text()
      await dispatcher.close()
    }
  }

  const wanted = ['journey.accept', 'journey.tls', 'journey.read', 'journey.parse', 'journey.decode', 'journey.handler', 'journey.serialize', 'journey.write']
  const complete = await poll('a trace with every stage span in Jaeger', async () => {
    const q = new URLSearchParams({
      'query.serviceName': 'request-journey',
      'query.startTimeMin': new Date(started.getTime() - 60_000).toISOString(),
      'query.startTimeMax': new Date(Date.now() + 60_000).toISOString()
    })
    const res = await fetch(`http://127.0.0.1:16686/api/v3/traces?${q}`)
    if (!res.ok) return undefined // 404 until a trace matches
    const body = await res.json() as { result: { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ traceId: string, name: string }> }> }> } }
    const byTrace = new Map<string, Set<string>>()
    for (const rs of body.result.resourceSpans) {
      for (const ss of rs.scopeSpans) for (const s of ss.spans) byTrace.set(s.traceId, (byTrace.get(s.traceId) ?? new Set()).add(s.name))
    }
    return [...byTrace.values()].find(names => wanted.every(n => names.has(n)))
  }, 90_000)
  assert.ok(complete)

  const series = await poll('stage histograms in Prometheus', async () => {
    const res = await fetch('http://127.0.0.1:9090/api/v1/query?query=' + encodeURIComponent('journey_stage_duration_seconds_count{route="/echo"}'))
    const body = await res.json() as { data: { result: Array<{ metric: Record<string, string> }> } }
    return body.data.result.length >= 8 ? body.data.result : undefined
  })
  assert.ok(series.every(s => s.metric.instance !== undefined && s.metric.job === 'request-journey'))
  // The alerting rules are mounted where the config names them, and load.
  const rules = await (await fetch('http://127.0.0.1:9090/api/v1/rules?type=alert')).json() as { data: { groups: Array<{ rules: Array<{ name: string, health: string }> }> } }
  assert.ok(rules.data.groups.flatMap(g => g.rules).some(r => r.name === 'JourneySpansDropped'), 'alerts.yml loaded')

  const health = await (await fetch('http://127.0.0.1:3001/api/health')).json() as { database: string }
  assert.equal(health.database, 'ok')
  const dashboards = await (await fetch('http://127.0.0.1:3001/api/search?type=dash-db')).json() as Array<{ uid: string }>
  assert.deepEqual(dashboards.map(d => d.uid).sort(), ['connections-kernel', 'request-journey'])
})
