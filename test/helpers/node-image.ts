// The Node base image deploy/Dockerfile builds FROM, for test/stack/image.test.ts: the one pinned in .env
// where a registry serves it, else a local stand-in built from parts this machine can reach.
//
// Why a stand-in: this project's machines reach Debian's archive and the npm registry but no container
// registry, so `node:<version>-bookworm-slim` cannot be pulled, and without a base image the Dockerfile
// (its stages, the addon's compile, the non-root user, the HEALTHCHECK) would never run anywhere here. The
// stand-in has what the Dockerfile relies on in the official image: Debian bookworm (debootstrap's minbase,
// from the archive), node in /usr/local/bin with its headers in /usr/local/include/node, npm, and a `node`
// user with uid 1000. Its Node is the one running this test. It is no substitute for the official image's
// contents beyond that, and the test says which base it used.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, appendFileSync, chownSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** The images pinned in .env (NODE_IMAGE, JAEGER_IMAGE, …). */
export const pins: Record<string, string> = Object.fromEntries(readFileSync(join(root, '.env'), 'utf8').split('\n')
  .filter(l => /^[A-Z_]+=/.test(l)).map(l => l.split('=', 2) as [string, string]))

export function run (cmd: string, args: string[], opts: { timeoutMs?: number, input?: Buffer, cwd?: string, env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, input: opts.input, cwd: opts.cwd, env: opts.env, maxBuffer: 64 * 1024 * 1024 })
}

const firstLine = (r: SpawnSyncReturns<string>): string =>
  (r.error?.message ?? `${r.stderr}${r.stdout}`).trim().split('\n').find(l => l.trim() !== '')?.slice(0, 200) ?? `exit ${r.status}`

/** The engine's version, or why none answers. */
export function dockerEngine (): { version: string } | { why: string } {
  const r = run('docker', ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 })
  return r.status === 0 ? { version: r.stdout.trim() } : { why: `no container engine reachable (${firstLine(r)})` }
}

export type BaseImage = { image: string, standIn: false } | { image: string, standIn: true, pinned: string, pullError: string }

/** The pinned Node image if the engine has it or can pull it; else the stand-in (built once per engine). */
export function nodeBaseImage (): BaseImage | { why: string } {
  const pinned = pins.NODE_IMAGE!
  if (run('docker', ['image', 'inspect', pinned]).status === 0) return { image: pinned, standIn: false }
  const pull = run('docker', ['pull', '--quiet', pinned], { timeoutMs: 120_000 })
  if (pull.status === 0) return { image: pinned, standIn: false }
  const pullError = firstLine(pull)
  const tag = `request-journey-stand-in/node:${process.versions.node}-bookworm`
  if (run('docker', ['image', 'inspect', tag]).status !== 0) {
    const why = buildStandIn(tag)
    if (why !== undefined) return { why: `${pinned} cannot be pulled (${pullError}), and no stand-in could be built: ${why}` }
  }
  return { image: tag, standIn: true, pinned, pullError }
}

/** Builds the stand-in and tags it; returns why it could not. */
function buildStandIn (tag: string): string | undefined {
  if (process.getuid?.() !== 0) return 'debootstrap needs root'
  if (run('debootstrap', ['--version']).status !== 0) return 'debootstrap is not installed (apt-get install debootstrap)'
  // Node's own install layout (official tarballs) or the npm `node` package's (how this project's machines get Node 24).
  const prefix = dirname(dirname(process.execPath))
  const nodeDir = [prefix, join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`)]
    .find(d => existsSync(join(d, 'include', 'node', 'node_api.h')))
  if (nodeDir === undefined) return `no Node headers next to ${process.execPath}`
  const work = mkdtempSync(join(tmpdir(), 'rj-stand-in-'))
  try {
    const fs = join(work, 'rootfs')
    const mirror = process.env.DEBIAN_MIRROR ?? 'http://deb.debian.org/debian'
    const boot = run('debootstrap', ['--variant=minbase', 'bookworm', fs, mirror], { timeoutMs: 10 * 60_000 })
    if (boot.status !== 0) return `debootstrap from ${mirror} failed (${firstLine(boot)})`
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
    const changes = ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']
    // Where this machine reaches the npm registry through a TLS proxy only its own CA bundle trusts, the
    // image's npm needs that bundle too (the official image would need the same on this machine).
    const extraCa = process.env.NODE_EXTRA_CA_CERTS
    if (extraCa !== undefined && existsSync(extraCa)) {
      mkdirSync(join(fs, 'usr/local/share/ca-certificates'), { recursive: true })
      writeFileSync(join(fs, 'usr/local/share/ca-certificates/host-extra.crt'), readFileSync(extraCa))
      changes.push('ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/host-extra.crt')
    }
    const tar = spawnSync('tar', ['-C', fs, '-c', '.'], { maxBuffer: 2 * 1024 * 1024 * 1024 })
    if (tar.status !== 0) return `packing the root file system failed (${tar.stderr.toString().trim()})`
    const imp = run('docker', ['import', ...changes.flatMap(c => ['--change', c]), '-', tag], { input: tar.stdout, timeoutMs: 5 * 60_000 })
    if (imp.status !== 0) return `docker import failed (${firstLine(imp)})`
    return undefined
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
