// The README is the front door and links into itself and the other docs by heading: a renamed heading must
// not leave a dead link behind. Anchors are GitHub's: the heading lower-cased, punctuation dropped, spaces
// as hyphens.
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const slug = (heading: string): string => heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
const anchorsOf = (file: string): Set<string> => new Set(readFileSync(join(root, file), 'utf8').split('\n')
  .filter(l => /^#{1,6} /.test(l)).map(l => slug(l.replace(/^#+ /, ''))))

const docs = ['README.md', 'bench/README.md', 'bench/NOTES.md', 'experiments/README.md',
  ...readdirSync(join(root, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`)]

test('every link to a heading, in the README and the docs, finds that heading', () => {
  let links = 0
  const dead: string[] = []
  for (const file of docs) {
    for (const m of readFileSync(join(root, file), 'utf8').matchAll(/\]\(([^)\s#]*)#([^)\s]+)\)/g)) {
      links++
      const target = m[1] === '' ? file : join(dirname(file), m[1]!)
      if (!existsSync(join(root, target))) dead.push(`${file}: ${m[1]} does not exist`)
      else if (!anchorsOf(target).has(m[2]!)) dead.push(`${file}: no heading #${m[2]} in ${target}`)
    }
  }
  assert.ok(links > 20, `links found: ${links}`)
  assert.deepEqual(dead, [])
})

test('every link to a file, in the README and the docs, finds that file', () => {
  let links = 0
  const dead: string[] = []
  for (const file of docs) {
    for (const m of readFileSync(join(root, file), 'utf8').matchAll(/\]\(([^)\s#:<]+)(?:#[^)\s]*)?\)/g)) {
      links++
      if (!existsSync(join(root, dirname(file), m[1]!))) dead.push(`${file}: ${m[1]} does not exist`)
    }
  }
  assert.ok(links > 50, `links found: ${links}`)
  assert.deepEqual(dead, [])
})

test('every warning code the plugin can emit has a row in docs/plugin.md\'s table of warnings', () => {
  const dir = join(root, 'src', 'journey')
  const codes = new Set(readdirSync(dir).flatMap(f => [...readFileSync(join(dir, f), 'utf8').matchAll(/code: '(REQUEST_JOURNEY_[A-Z_]+)'/g)].map(m => m[1]!)))
  assert.ok(codes.size >= 9, `codes found: ${[...codes].join(', ')}`)
  const guide = readFileSync(join(root, 'docs', 'plugin.md'), 'utf8')
  assert.deepEqual([...codes].filter(code => !guide.includes(`| \`${code}\` |`)), [])
})

test('every module of the plugin and the server has a line in the README\'s layout', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const layout = readme.slice(readme.indexOf('\nsrc/\n'), readme.indexOf('\nnative/'))
  const files = [...readdirSync(join(root, 'src', 'journey')).map(f => ({ f, indent: 4 })),
    ...readdirSync(join(root, 'src')).filter(f => /\.(ts|js)$/.test(f) && !f.endsWith('-thread.js')).map(f => ({ f, indent: 2 }))]
  assert.ok(files.length > 50, `modules found: ${files.length}`)
  assert.deepEqual(files.filter(({ f, indent }) => !layout.includes(`\n${' '.repeat(indent)}${f} `)).map(({ f }) => f), [])
})
