// Builds the TCP_INFO addon (tcp_info.c) at install time, offline, with the node-gyp that ships with npm.
// Without a compiler, headers or Linux the install still succeeds: the kernel-wait measurements are simply
// "not measured" (the server logs why). Plain .mjs so it runs before anything is type-checked or installed.
// It fails the install only on a Node too old to run the .ts sources: npm merely warns about `engines`, and
// the first sign of trouble would otherwise be `npm start` failing with ERR_UNKNOWN_FILE_EXTENSION.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const say = (msg) => console.log(`request-journey: ${msg}`)

// `--package`: installed as part of the fastify-request-journey package (deploy/pack-journey.ts), which is
// JavaScript: no TypeScript sources to run, so no Node version to insist on here.
const [major, minor] = process.versions.node.split('.').map(Number)
if (!process.argv.includes('--package') && (major < 22 || (major === 22 && minor < 18))) {
  console.error(`request-journey: Node ${process.version} cannot run this project's TypeScript sources; it needs Node >= 22.18 ` +
    '(Node 24 LTS recommended), which runs .ts files without a build step. One way, without root: ' +
    'npm install -g --prefix ~/.node24 node@24 && export PATH="$HOME/.node24/bin:$PATH" — then run npm ci again.')
  process.exit(1)
}

function headersDir () {
  const prefix = dirname(dirname(process.execPath))
  const candidates = [
    process.env.JOURNEY_NODEDIR,
    prefix, // official tarballs, Docker's node images: <prefix>/include/node
    join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`) // the npm `node` package
  ]
  return candidates.find(d => d !== undefined && existsSync(join(d, 'include', 'node', 'node_api.h')))
}

// What to say when node-gyp fails: the compiler's own first error if there is one (`fatal error: bits/…h: No
// such file or directory` says what is missing), since node-gyp's last lines are only its own `gyp ERR!` trailer.
function gypFailure (r) {
  const lines = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').map(l => l.trim()).filter(Boolean)
  const compiler = lines.find(l => /\berror:/.test(l) && !l.startsWith('gyp'))
  return compiler ?? lines.slice(-3).join(' | ')
}

function nodeGyp () {
  const fromNpm = process.env.npm_config_node_gyp // set by npm for lifecycle scripts
  if (fromNpm !== undefined && existsSync(fromNpm)) return fromNpm
  // Run by hand rather than by npm: the npm on PATH, whose bin/npm-cli.js its `npm` links to.
  const npmCli = process.env.npm_execpath ?? (process.env.PATH ?? '').split(':').map(d => join(d, 'npm')).find(existsSync)
  try {
    return createRequire(join(dirname(realpathSync(npmCli ?? '')), 'x.js')).resolve('node-gyp/bin/node-gyp.js')
  } catch { return undefined }
}

// `--cross=arm64 <out>`: the addon for Linux arm64 with glibc (AWS Graviton, Ampere), built on this x64
// machine with Debian's cross compiler (gcc-aarch64-linux-gnu) for deploy/pack-journey.ts to ship prebuilt.
// Node-API's headers are the same on every arch, so this Node's serve. Built in a scratch copy so the
// checkout's own build/ (this machine's addon) is left alone.
const cross = process.argv.find(a => a.startsWith('--cross='))?.slice('--cross='.length)
if (cross !== undefined) {
  const out = process.argv[process.argv.indexOf(`--cross=${cross}`) + 1]
  const CROSS = { arm64: { prefix: 'aarch64-linux-gnu', package: 'gcc-aarch64-linux-gnu', libcDev: 'libc6-dev-arm64-cross', machine: 0xb7 } }[cross]
  const fail = (msg) => { console.error(`request-journey: ${msg}`); process.exit(1) }
  if (CROSS === undefined || out === undefined) fail(`usage: node native/build.mjs --cross=arm64 <out.node> (${cross} is not an arch this builds for)`)
  const cc = `${CROSS.prefix}-gcc`
  if (spawnSync(cc, ['--version']).status !== 0) fail(`${cc} not found: the ${cross} addon needs Debian's cross compiler (apt-get install ${CROSS.package})`)
  // The cross C library's headers are only a Recommends of the compiler, so `--no-install-recommends` leaves
  // a compiler that cannot include <stdint.h> (node_api.h does): say which package, before node-gyp hides it.
  if (spawnSync(cc, ['-E', '-x', 'c', '-'], { input: '#include <stdint.h>\n' }).status !== 0) {
    fail(`${cc} cannot find the ${cross} C library's headers (apt-get install ${CROSS.libcDev})`)
  }
  const nodedir = headersDir()
  const gyp = nodeGyp()
  if (nodedir === undefined || gyp === undefined) fail(nodedir === undefined ? 'no Node headers found (set JOURNEY_NODEDIR)' : 'node-gyp not found (run this through npm, or from a Node installed with npm)')
  const scratch = mkdtempSync(join(tmpdir(), `journey-addon-${cross}-`))
  try {
    for (const f of ['binding.gyp', 'tcp_info.c']) copyFileSync(join(here, f), join(scratch, f))
    // C only, so gcc links too (node-gyp links with $CXX by default, which would need the cross g++ as well).
    const env = { ...process.env, CC: cc, CXX: `${CROSS.prefix}-g++`, LINK: cc, AR: `${CROSS.prefix}-ar` }
    const r = spawnSync(process.execPath, [gyp, 'rebuild', `--arch=${cross}`, `--nodedir=${nodedir}`, '--loglevel=warn'], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
    if (r.status !== 0) fail(`the ${cross} addon did not build (node-gyp exited ${r.status}): ${gypFailure(r)}`)
    const built = join(scratch, 'build/Release/tcp_info.node')
    // The ELF header's e_machine (offset 18): a build that quietly used the host's compiler is caught here.
    const machine = readFileSync(built).readUInt16LE(18)
    if (machine !== CROSS.machine) fail(`the ${cross} build came out for ELF machine 0x${machine.toString(16)}, not 0x${CROSS.machine.toString(16)}`)
    copyFileSync(built, out)
    say(`TCP_INFO addon built for linux-${cross}: ${out}`)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  process.exit(0)
}

// A package install first tries the prebuilt addon the package ships (deploy/pack-journey.ts): when it
// loads here, there is nothing to compile. Loaded, not just found: a file for this platform may still fail
// (a libc it was not built for), and then building one is the way out.
if (process.argv.includes('--package')) {
  try {
    createRequire(import.meta.url)('node-gyp-build')(here)
    say('TCP_INFO addon: the prebuilt one loads here, nothing to build')
    process.exit(0)
  } catch {
    // none loads here: build one, below
  }
}

if (process.platform !== 'linux') {
  say(`TCP_INFO addon skipped: Linux only (this is ${process.platform}); kernel wait times will not be measured`)
  process.exit(0)
}
const nodedir = headersDir()
const gyp = nodeGyp()
if (nodedir === undefined || gyp === undefined) {
  say(`TCP_INFO addon not built: ${nodedir === undefined ? 'no Node headers found (set JOURNEY_NODEDIR to a directory with include/node)' : 'node-gyp not found'}; kernel wait times will not be measured`)
  process.exit(0)
}
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
if (r.status === 0) say('TCP_INFO addon built')
else say(`TCP_INFO addon not built (node-gyp exited ${r.status}): ${gypFailure(r)}; kernel wait times will not be measured`)
