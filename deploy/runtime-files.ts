// What src/ reads next to its own code at run time (the demo's protobuf schema): every file under it that is
// neither TypeScript nor JavaScript, which the compiler does not emit. `npm run build` (build.ts) and the
// bench's compiled servers (bench/compile.ts) copy them alike, so a file added to src/ is found by both.
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** Copies every file under `srcDir` that is not .ts or .js to the same place under `outDir`. */
export function copyRuntimeFiles (srcDir: string, outDir: string): void {
  for (const file of readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
    if (/\.(?:ts|js)$/.test(file) || !statSync(join(srcDir, file)).isFile()) continue
    mkdirSync(dirname(join(outDir, file)), { recursive: true })
    copyFileSync(join(srcDir, file), join(outDir, file))
  }
}
