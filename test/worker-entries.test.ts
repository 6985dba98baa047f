// Every worker thread the server starts has a plain JavaScript entry. A .ts entry, or any .ts module it
// imports, starts Node's TypeScript stripper in the worker's own isolate: ≈ 10 MB of RSS per thread here
// (bench/NOTES.md). With stripping off such a load fails, so each entry is loaded that way — the entry the
// server really starts, so pointing it back at a .ts file fails here too.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { COMPUTE_WORKER } from '../src/app/index.ts'
import { WORKER_ENTRY } from '../src/otlp-worker-exporter.ts'

const loadWithoutStripper = (url: URL): Promise<unknown> => promisify(execFile)(process.execPath,
  ['--no-experimental-strip-types', '--input-type=module', '-e', `await import(${JSON.stringify(url.href)})`], { timeout: 20_000 })

for (const [name, entry] of [['the OTLP export worker', WORKER_ENTRY], ['the demo\'s compute worker (piscina)', COMPUTE_WORKER]] as const) {
  test(`${name} loads no TypeScript: its isolate does not start Node's type stripper`, async () => {
    await loadWithoutStripper(entry)
  })
}

test('the check can fail: a TypeScript module does not load that way', async () => {
  await assert.rejects(loadWithoutStripper(new URL('../src/otlp-worker-exporter.ts', import.meta.url)), /ERR_UNKNOWN_FILE_EXTENSION/)
})
