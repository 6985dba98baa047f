// Builds the TCP_INFO addon (tcp_info.c) at install time, offline, with the node-gyp that ships with npm.
// Without a compiler, headers or Linux the install still succeeds: the kernel-wait measurements are simply
// "not measured" (the server logs why). Plain .mjs so it runs before anything is type-checked or installed.
// It fails the install only on a Node too old to run the .ts sources: npm merely warns about `engines`, and
// the first sign of trouble would otherwise be `npm start` failing with ERR_UNKNOWN_FILE_EXTENSION.
import { existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
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

function nodeGyp () {
  const fromNpm = process.env.npm_config_node_gyp // set by npm for lifecycle scripts
  if (fromNpm !== undefined && existsSync(fromNpm)) return fromNpm
  try {
    return createRequire(join(dirname(process.env.npm_execpath ?? ''), 'x.js')).resolve('node-gyp/bin/node-gyp.js')
  } catch { return undefined }
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
else say(`TCP_INFO addon not built (node-gyp exited ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}; kernel wait times will not be measured`)
