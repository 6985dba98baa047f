// `npm run pack:journey`: the journey plugin (src/journey/) as an npm package tarball, for a Fastify service
// of your own: `npm install ./fastify-request-journey-<version>.tgz`, then `import { createJourney } from
// 'fastify-request-journey'`. Plain JavaScript with type declarations: Node does not strip types from
// files under node_modules, so the .ts sources could not be installed as they are.
//
//   node deploy/pack-journey.ts [--host-only] [outDir]   (default dist-package; prints the tarball's path last)
//
// The package holds lib/journey/ (compiled) and native/: the TCP_INFO addon prebuilt for Linux x64 and arm64
// with glibc (arm64 cross-compiled: native/build.mjs --cross; `--host-only` packs this machine's alone, for
// a machine without the cross compiler — never for a release), and its source, which the package's install script builds with npm's own
// node-gyp where no prebuilt one loads, as npm ci builds it here (../../native from lib/journey/ is where
// tcp-info.ts looks, in both layouts). Fastify, prom-client and the OpenTelemetry
// packages are peer dependencies: the plugin must use your app's own instances (its registry, its tracer
// provider), and npm installs them when your app has none.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PEER_LINES, peerRanges } from './peer-minimums.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const hostOnly = args.includes('--host-only')
const outDir = resolve(root, args.find(a => !a.startsWith('--')) ?? 'dist-package')
const project = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string, license: string, dependencies: Record<string, string>
}

const DEPENDENCIES = ['fastify-plugin', 'node-gyp-build']
const versions = (names: string[]): Record<string, string> =>
  Object.fromEntries(names.map(n => {
    const v = project.dependencies[n]
    if (v === undefined) throw new Error(`${n} is not a dependency of the project`)
    return [n, v]
  }))
// The packages src/journey imports (test/journey/plugin.test.ts keeps it from importing the rest of the
// project), each from the oldest version it works with: peer-minimums.ts.
const peers = peerRanges(PEER_LINES)
for (const name of Object.keys(peers)) {
  if (project.dependencies[name] === undefined) throw new Error(`${name} is not a dependency of the project`)
}

const stage = mkdtempSync(join(tmpdir(), 'journey-package-'))
try {
  // Compiled on its own: a tsconfig whose only input is src/journey, with declarations.
  writeFileSync(join(stage, 'tsconfig.json'), JSON.stringify({
    extends: join(root, 'tsconfig.json'),
    compilerOptions: {
      noEmit: false,
      declaration: true,
      allowJs: false,
      rewriteRelativeImportExtensions: true,
      rootDir: join(root, 'src/journey'),
      outDir: join(stage, 'lib/journey'),
      typeRoots: [join(root, 'node_modules/@types')]
    },
    include: [join(root, 'src/journey')]
  }))
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  execFileSync(process.execPath, [tsc, '-p', join(stage, 'tsconfig.json')], { stdio: 'inherit' })
  rmSync(join(stage, 'tsconfig.json'))

  mkdirSync(join(stage, 'native'))
  for (const f of ['binding.gyp', 'tcp_info.c', 'build.mjs']) copyFileSync(join(root, 'native', f), join(stage, 'native', f))
  // The addon this checkout's npm ci built, shipped prebuilt: npm 12, pnpm and Yarn 4 run no dependency's
  // install script until the app approves it, and many images have no compiler. It is Node-API (one file for
  // every Node version) and needs only glibc 2.2.5's getsockopt, so it is tagged for the libc it was built with: on
  // Alpine (when built with glibc), another arch or a changed tcp_info.c, node-gyp-build finds no match and the install script builds
  // one (native/build.mjs). Names and tags as prebuildify writes them, which node-gyp-build reads.
  const built = join(root, 'native/build/Release/tcp_info.node')
  if (process.platform === 'linux') {
    const sources = ['tcp_info.c', 'binding.gyp'].map(f => statSync(join(root, 'native', f)).mtimeMs)
    if (!existsSync(built) || statSync(built).mtimeMs < Math.max(...sources)) {
      throw new Error(`${built} is missing or older than its sources: build it first (npm ci, or npm run install)`)
    }
    const { header } = process.report.getReport() as { header: { glibcVersionRuntime?: string } }
    const prebuilds = join(stage, 'native/prebuilds', `linux-${process.arch}`)
    mkdirSync(prebuilds, { recursive: true })
    copyFileSync(built, join(prebuilds, `node.napi.${header.glibcVersionRuntime === undefined ? 'musl' : 'glibc'}.node`))
    // arm64 servers (Graviton, Ampere) are where many services run now, and there a blocked install script
    // would lose the kernel's figures as on x64. Cross-built here; test/package.test.ts runs it on an arm64
    // Node under qemu-user and on Debian's arm64 kernel in qemu-system-aarch64.
    if (process.arch === 'x64' && header.glibcVersionRuntime !== undefined && !hostOnly) {
      mkdirSync(join(stage, 'native/prebuilds/linux-arm64'))
      execFileSync(process.execPath, [join(root, 'native/build.mjs'), '--cross=arm64', join(stage, 'native/prebuilds/linux-arm64/node.napi.glibc.node')], { stdio: ['ignore', 'ignore', 'inherit'] })
    }
  }

  writeFileSync(join(stage, 'package.json'), JSON.stringify({
    name: 'fastify-request-journey',
    version: project.version,
    description: 'Where the time of each request goes, stage by stage (accept, TLS, read, parse, decode, handler, serialize, write): a Fastify plugin emitting OpenTelemetry spans and Prometheus metrics.',
    license: project.license,
    type: 'module',
    exports: { '.': { types: './lib/journey/index.d.ts', default: './lib/journey/index.js' } },
    // Not the project's (which runs its .ts sources, so needs Node's type stripping): compiled, the package
    // needs require(esm) without a flag for CommonJS apps, which came in 22.12. The test runs it there.
    engines: { node: '>=22.12.0' },
    // The addon is optional: build.mjs never fails an install for it (no compiler, not Linux).
    scripts: { install: 'node native/build.mjs --package' },
    dependencies: versions(DEPENDENCIES),
    peerDependencies: peers
  }, null, 2) + '\n')
  // The usage example is the project README's own, so the two cannot drift apart.
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Using the instrumentation in your own Fastify app'))
  const example = /```ts\n[\s\S]*?\n```/.exec(section)?.[0]
  if (example === undefined) throw new Error('README.md: no TypeScript example under "Using the instrumentation in your own Fastify app"')
  // So do the parts of the plugin's guide marked for it: what each of its warnings means (a warning a team
  // sees names its remedy there), its metrics by OTLP, its span processor, zero-code instrumentation, NestJS
  // and the order of hooks. Their links (and stages.md's) to the sources point at their compiled files in the package.
  const compiled = (text: string): string => text.replace(/\]\(\.\.\/src\/journey\/([\w-]+)\.ts\)/g, '](lib/journey/$1.js)')
  const guide = readFileSync(join(root, 'docs', 'plugin.md'), 'utf8')
  const marked = [...guide.matchAll(/<!-- package:start -->\n([\s\S]*?)<!-- package:end -->/g)].map(m => compiled(m[1]!.trim()))
  if (marked.length === 0) throw new Error('docs/plugin.md: no part marked <!-- package:start --> … <!-- package:end -->')
  const stages = compiled(readFileSync(join(root, 'docs/stages.md'), 'utf8'))
  writeFileSync(join(stage, 'stages.md'), stages)
  writeFileSync(join(stage, 'README.md'), [
    '# fastify-request-journey',
    '',
    'Where the time of each request goes: every stage of every request (accept, TLS, read, parse, decode,',
    'handler, serialize, write) measured by a Fastify 5 plugin and emitted as OpenTelemetry spans (one',
    'waterfall per request) and Prometheus histograms. From the request-journey project, whose README says',
    'more (sampling, exemplars, what it costs, what it survives).',
    '',
    example,
    '',
    'Register the plugin on the root instance before your routes, and await it (Fastify tells a plugin only',
    'about routes added once it has loaded): it observes the app\'s own server, HTTP/1.1 or HTTP/2 (call',
    '`journey.observeServer(server, name)` for other servers you build). [stages.md](stages.md) defines every',
    'stage, span, attribute and metric. The TCP_INFO addon (kernel wait before accept) comes prebuilt for',
    'Linux x64 and arm64 with glibc; elsewhere the install script builds it, with a compiler, once the app approves it',
    '(npm 12: `npm install-scripts approve fastify-request-journey`, then `npm rebuild fastify-request-journey`;',
    'pnpm: `pnpm approve-builds`). Without it those figures are absent, everything else is measured, and a',
    'warning says so. Bundling your service (esbuild, webpack)?',
    'Keep this package external (`--external:fastify-request-journey`), as for any package with a native addon.',
    'The registry may be prom-client\'s or its successor\'s, `@prometheus-io/client` (the one fastify-metrics 14',
    'uses: give the journey its `register` and one `/metrics` serves both).',
    'The type declarations need TypeScript 5.7 or newer (generic typed arrays), or `skipLibCheck`.',
    'A CommonJS app can `require()` the package (Node 22.12 or newer).',
    'On OpenTelemetry JS 2.x (sdk-node 0.2xx) npm reaches for the 3.x peers and stops (ERESOLVE): name your',
    'line in the install, `npm install fastify-request-journey @opentelemetry/sdk-trace@2 @opentelemetry/core@2 @opentelemetry/resources@2`.',
    '',
    ...marked.flatMap(part => [part, '']),
  ].join('\n'))

  mkdirSync(outDir, { recursive: true })
  const packed = execFileSync('npm', ['pack', stage, '--pack-destination', outDir, '--silent'], { encoding: 'utf8' }).trim().split('\n').at(-1)!
  console.log(join(outDir, packed))
} finally {
  rmSync(stage, { recursive: true, force: true })
}
