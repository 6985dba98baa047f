// The app's image, built from deploy/Dockerfile by a real container engine and run: it becomes healthy
// (its HEALTHCHECK, on a metrics port of the test's choosing), runs as the unprivileged `node` user, serves
// HTTP and HTTPS, runs the compose stack's load generator, measures kernel wait with the TCP_INFO addon
// compiled in its deps stage, exports every stage span by OTLP/HTTP to a receiver outside the container,
// logs no warning, and stops cleanly (exit 0) on `docker stop`.
//
// The base is the Node image pinned in .env where a registry serves it; here, where none is reachable, a
// stand-in built from Debian's archive and this machine's Node (test/helpers/stand-in-images.ts says what
// it holds), and the test prints which. Where no engine answers, or no base can be had, it is skipped with
// the reason printed — never passed; REQUIRE_CONTAINERS=1 turns those skips into failures.
//
// The container shares the host's network (--network host), so it reaches the test's OTLP receiver on the
// host's loopback and the test reaches it without published ports.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { Agent, request } from 'undici'
import { startSpanReceiver, type SpanReceiver } from '../../experiments/lib/span-receiver.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { freePorts } from '../../experiments/lib/server.ts'
import { buildAppImage, dockerEngine, imageLine, nodeBaseImage, run, skipContainerTest, until } from '../helpers/stand-in-images.ts'

const name = `request-journey-image-test-${process.pid}`
const tag = 'request-journey:image-test'

let receiver: SpanReceiver | undefined
after(async () => {
  run('docker', ['rm', '-f', name])
  await receiver?.close()
})

const logLines = (): Array<{ level: number, msg: string }> =>
  run('docker', ['logs', name]).stdout.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as { level: number, msg: string })

test('deploy/Dockerfile builds an image that runs healthy as `node`, serves, exports every stage span and stops cleanly', { timeout: 25 * 60_000 }, async (t) => {
  const engine = dockerEngine()
  const base = 'why' in engine ? engine : nodeBaseImage()
  if ('why' in base) return skipContainerTest(t, 'image test', base.why)
  console.log(`image test: FROM ${imageLine(base)}`)

  const build = buildAppImage(base, tag)
  assert.equal(build.status, 0, `docker build failed:\n${(build.stdout + build.stderr).slice(-3000)}`)

  receiver = await startSpanReceiver()
  const [http, https, metrics] = await freePorts(3) as [number, number, number]
  const started = run('docker', ['run', '-d', '--name', name, '--network', 'host', '--init',
    '-e', `HTTP_PORT=${http}`, '-e', `HTTPS_PORT=${https}`, '-e', `METRICS_PORT=${metrics}`,
    '-e', 'HOST=127.0.0.1', '-e', 'METRICS_HOST=127.0.0.1',
    '-e', `OTEL_EXPORTER_OTLP_ENDPOINT=${receiver.endpoint}`, '-e', 'OTEL_EXPORTER_OTLP_PROTOCOL=http/json', '-e', 'OTEL_BSP_SCHEDULE_DELAY=200',
    tag])
  assert.equal(started.status, 0, started.stderr)

  // Healthy by its own HEALTHCHECK (every 5 s), which must find the metrics listener where METRICS_PORT put it.
  const health = await until('the container\'s health check to decide', () => {
    const s = run('docker', ['inspect', '--format', '{{.State.Health.Status}}', name]).stdout.trim()
    return s === 'starting' ? undefined : s
  }, 60_000)
  assert.equal(health, 'healthy', `health ${health}; logs:\n${run('docker', ['logs', name]).stdout.slice(-2000)}`)

  // The server process (not the init in front of it) runs as uid 1000, the image's `node` user.
  assert.equal(run('docker', ['inspect', '--format', '{{.Config.User}}', name]).stdout.trim(), 'node')
  const top = run('docker', ['top', name, '-o', 'pid,uid,args']).stdout
  assert.match(top, /^\s*\d+\s+1000\s+node dist\/main\.js$/m, top)

  for (const url of [`http://127.0.0.1:${http}/echo`, `https://127.0.0.1:${https}/echo`]) {
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
    const r = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"message":"image"}', dispatcher })
    assert.equal(r.statusCode, 200)
    assert.deepEqual(await r.body.json(), { message: 'image' })
    await dispatcher.close()
  }

  // The compose stack's `load` profile: the same image running experiments/load.ts (TypeScript, in a
  // production install) against the app, as docker-compose.yml's `load` service does.
  const load = run('docker', ['run', '--rm', '--network', 'host', '--name', `${name}-load`, tag, 'node', 'experiments/load.ts',
    '--http', `http://127.0.0.1:${http}`, '--https', `https://127.0.0.1:${https}`, '--seconds', '3', '--concurrency', '2'], { timeoutMs: 60_000 })
  assert.equal(load.status, 0, `the load profile's command failed:\n${load.stdout}${load.stderr}`)
  const sent = /load: sent (\d+) requests, 0 failed/.exec(load.stdout)
  assert.ok(sent !== null && Number(sent[1]) > 10, load.stdout + load.stderr)

  const wanted = ['journey.accept', 'journey.tls', 'journey.read', 'journey.parse', 'journey.decode', 'journey.handler', 'journey.serialize', 'journey.write']
  await until('an HTTPS request\'s trace with every stage span', () => {
    const byTrace = new Map<string, Set<string>>()
    for (const s of receiver!.all()) byTrace.set(s.traceId, (byTrace.get(s.traceId) ?? new Set()).add(s.name))
    return [...byTrace.values()].find(names => wanted.every(n => names.has(n)))
  }, 30_000)

  const scrape = parseMetrics(await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text())
  assert.ok(sum(scrape, 'journey_stage_duration_seconds_count', { stage: 'handler', route: '/echo' }) >= 2)
  assert.ok(sum(scrape, 'http_server_request_duration_seconds_count') >= 2 + Number(sent[1]), 'every request of the load counted')
  assert.ok(sum(scrape, 'journey_accept_kernel_wait_seconds_count') >= 2, 'TCP_INFO measured in the image (the addon loads)')

  const warnings = logLines().filter(l => l.level >= 40)
  assert.deepEqual(warnings, [], 'a container start logs no warning')

  const stopAt = Date.now()
  assert.equal(run('docker', ['stop', '--time', '20', name], { timeoutMs: 30_000 }).status, 0)
  const stopMs = Date.now() - stopAt
  assert.equal(run('docker', ['inspect', '--format', '{{.State.ExitCode}}', name]).stdout.trim(), '0')
  assert.ok(stopMs < 15_000, `SIGTERM drained and exited (${stopMs} ms), not killed at the timeout`)
  assert.ok(logLines().some(l => l.msg === 'stopped'))
})
