// `npm run build`: src/ compiled to plain JavaScript in dist/, for production (the Docker image runs
// `node dist/main.js`). Development runs the .ts files as they are, but every isolate that loads one starts
// Node's TypeScript stripper: ≈ 17 MB of RSS in the main thread, ≈ 10 MB in each worker thread with a .ts
// entry (bench/NOTES.md). The compiled server starts none: npm start idled at 160–163 MB here, dist/main.js
// at 133 MB.
//
//   node deploy/build.ts [outDir]     (default dist; it must sit directly in the project, as src/ does,
//                                      so the TCP_INFO addon is found at ../native from its journey/ folder)
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { copyRuntimeFiles } from './runtime-files.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const outDir = resolve(root, process.argv[2] ?? 'dist')
if (dirname(outDir) !== root) throw new Error(`outDir must be a folder directly in ${root} (got ${outDir})`)

rmSync(outDir, { recursive: true, force: true })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', outDir], { stdio: 'inherit' })
// Files that are not code but read next to it (orders.ts's protobuf schema).
copyRuntimeFiles(join(root, 'src'), outDir)
console.log(`built ${basename(outDir)}/ (run: node ${basename(outDir)}/main.js)`)
