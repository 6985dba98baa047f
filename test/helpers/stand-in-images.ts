// Container images for the tests that run the app's image (test/stack/image.test.ts) and part of the
// compose stack (test/stack/compose-scale.test.ts): the ones pinned in .env where a registry serves them,
// else local stand-ins built from parts this machine can reach.
//
// Why stand-ins: this project's machines reach Debian's archive and the npm registry but no container
// registry, so no pinned image can be pulled, and without images deploy/Dockerfile and docker-compose.yml
// would never run anywhere here. Each stand-in is Debian bookworm from debootstrap (the archive) holding
// what the compose file relies on in the official image:
// - node: node in /usr/local/bin with its headers in /usr/local/include/node, npm, a `node` user with uid
//   1000 (the Node running this test, and npm 11 from the registry);
// - haproxy: Debian's HAProxy (2.6; the stack pins 3.2), started on /usr/local/etc/haproxy/haproxy.cfg;
// - prometheus: Debian's Prometheus (2.42; the stack pins v3) as the entrypoint, working in /prometheus.
// Both of the last two have wget, which the compose file's health checks run. They are no substitute for
// the official images beyond that, and the tests print which images they used.
import assert from 'node:assert/strict'
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { appendFileSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../../', import.meta.url))

/** The images pinned in .env (NODE_IMAGE, JAEGER_IMAGE, …). */
export const pins: Record<string, string> = Object.fromEntries(readFileSync(join(root, '.env'), 'utf8').split('\n')
  .filter(l => /^[A-Z_]+=/.test(l)).map(l => l.split('=', 2) as [string, string]))

export function run (cmd: string, args: string[], opts: { timeoutMs?: number, input?: Buffer, cwd?: string, env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, input: opts.input, cwd: opts.cwd, env: opts.env, maxBuffer: 64 * 1024 * 1024 })
}

export const firstLine = (r: SpawnSyncReturns<string>): string =>
  (r.error?.message ?? `${r.stderr}${r.stdout}`).trim().split('\n').find(l => l.trim() !== '')?.slice(0, 200) ?? `exit ${r.status}`

/**
 * Skips a container test with its reason printed (a skip must say why, never look like a pass), or fails
 * it under REQUIRE_CONTAINERS=1, where containers are expected to run.
 */
export function skipContainerTest (t: TestContext, label: string, why: string): void {
  console.log(`${label} skipped: ${why}`)
  if (process.env.REQUIRE_CONTAINERS === '1') assert.fail(`REQUIRE_CONTAINERS=1: ${why}`)
  t.skip(why)
}

/**
 * Polls `fn` until it returns something; a throw counts as "not yet" (a refused connection while a
 * container starts). Fails the test after `timeoutMs`.
 */
export async function until<T> (what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 1000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await Promise.resolve().then(fn).catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/**
 * Waits for, then takes, the host ports docker-compose.yml publishes (3000, 3443, 9464, 9090…): the two
 * compose tests both bring it up, and node --test runs test files side by side where there are more than
 * two cores. A lock file naming its holder's pid; one whose holder is gone is taken over. Returns the release.
 */
export async function composePortsTurn (): Promise<() => void> {
  const file = join(tmpdir(), 'request-journey-compose-ports.lock')
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' })
      return () => { if (readOr(file, '') === String(process.pid)) rmSync(file, { force: true }) }
    } catch {
      if (!alive(Number(readOr(file, '')))) rmSync(file, { force: true })
      else await new Promise(resolve => setTimeout(resolve, 1000))
    }
  }
}

function readOr (file: string, otherwise: string): string {
  try { return readFileSync(file, 'utf8') } catch { return otherwise }
}

/** Whether a process of that pid is running (one of another user's counts). */
export function alive (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/** The engine's version, or why none answers. */
export function dockerEngine (): { version: string } | { why: string } {
  const r = run('docker', ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 })
  return r.status === 0 ? { version: r.stdout.trim() } : { why: `no container engine reachable (${firstLine(r)})` }
}

export interface Image {
  image: string
  /** Why the pinned image is not the one used: it could not be pulled (undefined when it is the pinned one). */
  standInFor?: { pinned: string, pullError: string }
}

/** A line for the test's output: which image stands where. */
export const imageLine = (i: Image): string =>
  i.standInFor === undefined ? i.image : `${i.image} (a stand-in for ${i.standInFor.pinned}, which cannot be pulled here: ${i.standInFor.pullError})`

/** The pinned image if the engine has it or can pull it; else the stand-in, built once per engine. */
function pinnedOrStandIn (pin: string, tag: string, build: () => string | undefined): Image | { why: string } {
  const pinned = pins[pin]!
  if (run('docker', ['image', 'inspect', pinned]).status === 0) return { image: pinned }
  const pull = run('docker', ['pull', '--quiet', pinned], { timeoutMs: 120_000 })
  if (pull.status === 0) return { image: pinned }
  const pullError = firstLine(pull)
  if (run('docker', ['image', 'inspect', tag]).status !== 0) {
    const why = build()
    if (why !== undefined) return { why: `${pinned} cannot be pulled (${pullError}), and no stand-in could be built: ${why}` }
  }
  return { image: tag, standInFor: { pinned, pullError } }
}

/** The Node base deploy/Dockerfile builds FROM. */
export function nodeBaseImage (): Image | { why: string } {
  const tag = `request-journey-stand-in/node:${process.versions.node}-bookworm`
  return pinnedOrStandIn('NODE_IMAGE', tag, () => {
    // Node's own install layout (official tarballs) or the npm `node` package's (how this project's machines get Node 24).
    const prefix = dirname(dirname(process.execPath))
    const nodeDir = [prefix, join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`)]
      .find(d => existsSync(join(d, 'include', 'node', 'node_api.h')))
    if (nodeDir === undefined) return `no Node headers next to ${process.execPath}`
    const changes = ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']
    return debootstrapImage(tag, [], changes, (fs, work) => {
      mkdirSync(join(fs, 'usr/local/bin'), { recursive: true })
      copyFileSync(process.execPath, join(fs, 'usr/local/bin/node'))
      cpSync(join(nodeDir, 'include', 'node'), join(fs, 'usr/local/include/node'), { recursive: true })
      // npm as the official image has it, from the registry (the npm `node` package carries none).
      const pack = run('npm', ['pack', 'npm@11', '--silent', '--pack-destination', work], { timeoutMs: 5 * 60_000, cwd: work })
      const tarball = pack.stdout.trim().split('\n').pop()
      if (pack.status !== 0 || tarball === undefined || tarball === '') return `npm pack npm@11 failed (${firstLine(pack)})`
      const npmDir = join(fs, 'usr/local/lib/node_modules/npm')
      mkdirSync(npmDir, { recursive: true })
      const untar = run('tar', ['-xzf', join(work, tarball), '-C', npmDir, '--strip-components=1'])
      if (untar.status !== 0) return `unpacking npm failed (${firstLine(untar)})`
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(fs, 'usr/local/bin/npm'))
      symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(fs, 'usr/local/bin/npx'))
      appendFileSync(join(fs, 'etc/passwd'), 'node:x:1000:1000::/home/node:/bin/sh\n')
      appendFileSync(join(fs, 'etc/group'), 'node:x:1000:\n')
      mkdirSync(join(fs, 'home/node'))
      chownSync(join(fs, 'home/node'), 1000, 1000)
      // Where this machine reaches the npm registry through a TLS proxy only its own CA bundle trusts, the
      // image's npm needs that bundle too (the official image would need the same on this machine).
      const extraCa = process.env.NODE_EXTRA_CA_CERTS
      if (extraCa !== undefined && existsSync(extraCa)) {
        mkdirSync(join(fs, 'usr/local/share/ca-certificates'), { recursive: true })
        writeFileSync(join(fs, 'usr/local/share/ca-certificates/host-extra.crt'), readFileSync(extraCa))
        changes.push('ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/host-extra.crt')
      }
      return undefined
    })
  })
}

/** The balancer's and Prometheus's images, for docker-compose.yml's `lb` and `prometheus`. */
export function toolImages (): { haproxy: Image, prometheus: Image } | { why: string } {
  // One root file system for both stand-ins (a minute of debootstrap), imported twice with their own start.
  let fs: string | undefined
  let work: string | undefined
  const tools = (tag: string, changes: string[]) => (): string | undefined => {
    if (fs === undefined) {
      work = mkdtempSync(join(tmpdir(), 'rj-stand-in-'))
      const why = bootstrap(join(work, 'rootfs'), ['haproxy', 'prometheus', 'wget'])
      if (why !== undefined) return why
      fs = join(work, 'rootfs')
      mkdirSync(join(fs, 'prometheus'))
      mkdirSync(join(fs, 'usr/local/etc/haproxy'), { recursive: true })
    }
    return importImage(fs, tag, changes)
  }
  try {
    const haproxy = pinnedOrStandIn('HAPROXY_IMAGE', 'request-journey-stand-in/haproxy:bookworm',
      tools('request-journey-stand-in/haproxy:bookworm', ['CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]']))
    if ('why' in haproxy) return haproxy
    const prometheus = pinnedOrStandIn('PROMETHEUS_IMAGE', 'request-journey-stand-in/prometheus:bookworm',
      tools('request-journey-stand-in/prometheus:bookworm', ['WORKDIR /prometheus', 'ENTRYPOINT ["/usr/bin/prometheus"]', 'CMD ["--config.file=/etc/prometheus/prometheus.yml"]']))
    if ('why' in prometheus) return prometheus
    return { haproxy, prometheus }
  } finally {
    if (work !== undefined) rmSync(work, { recursive: true, force: true })
  }
}

/**
 * deploy/Dockerfile built on `base` and tagged. The legacy builder: it takes --network host without
 * BuildKit's entitlements (the stages' npm ci and apt-get need the host's network on a bridgeless engine).
 */
export function buildAppImage (base: Image, tag: string): SpawnSyncReturns<string> {
  return run('docker', ['build', '--network', 'host', '-f', 'deploy/Dockerfile', '--build-arg', `NODE_IMAGE=${base.image}`, '-t', tag, '.'],
    { cwd: root, timeoutMs: 20 * 60_000, env: { ...process.env, DOCKER_BUILDKIT: '0' } })
}

function bootstrap (fs: string, include: string[]): string | undefined {
  if (process.getuid?.() !== 0) return 'debootstrap needs root'
  if (run('debootstrap', ['--version']).status !== 0) return 'debootstrap is not installed (apt-get install debootstrap)'
  const mirror = process.env.DEBIAN_MIRROR ?? 'http://deb.debian.org/debian'
  const args = ['--variant=minbase', ...(include.length > 0 ? [`--include=${include.join(',')}`] : []), 'bookworm', fs, mirror]
  const boot = run('debootstrap', args, { timeoutMs: 10 * 60_000 })
  return boot.status === 0 ? undefined : `debootstrap from ${mirror} failed (${firstLine(boot)})`
}

function importImage (fs: string, tag: string, changes: string[]): string | undefined {
  const tar = spawnSync('tar', ['-C', fs, '-c', '.'], { maxBuffer: 4 * 1024 * 1024 * 1024 })
  if (tar.status !== 0) return `packing the root file system failed (${tar.stderr.toString().trim()})`
  const imp = run('docker', ['import', ...changes.flatMap(c => ['--change', c]), '-', tag], { input: tar.stdout, timeoutMs: 5 * 60_000 })
  return imp.status === 0 ? undefined : `docker import failed (${firstLine(imp)})`
}

/** A minbase image with `prepare` run on its root file system (it returns why it failed, if it did). */
function debootstrapImage (tag: string, include: string[], changes: string[], prepare: (fs: string, work: string) => string | undefined): string | undefined {
  const work = mkdtempSync(join(tmpdir(), 'rj-stand-in-'))
  try {
    const fs = join(work, 'rootfs')
    return bootstrap(fs, include) ?? prepare(fs, work) ?? importImage(fs, tag, changes)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
