// startTelemetry loads the OpenTelemetry SDK and the exporters only when tracing is on: a metrics-only
// process must not carry them (≈ 14 MB of RSS, telemetry.ts).
// Each case runs in a fresh process, with a module resolve hook recording every package it loads.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const telemetry = new URL('../src/telemetry.ts', import.meta.url).href
const root = fileURLToPath(new URL('..', import.meta.url))

const SCRIPT = `
import { registerHooks } from 'node:module'
const packages = new Set()
registerHooks({ resolve (specifier, context, next) {
  const r = next(specifier, context)
  const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url)
  if (m) packages.add(m[1])
  return r
} })
const { default: pino } = await import('pino')
const { startTelemetry } = await import(${JSON.stringify(telemetry)})
const t = await startTelemetry('loading-test', pino({ level: 'silent' }), { env: JSON.parse(process.env.CASE_ENV), exportThread: 'main' })
process.stdout.write(JSON.stringify({ tracing: t.tracing !== undefined, packages: [...packages] }))
await t.shutdown(500)
`

function loadedWith (env: Record<string, string>): Promise<{ tracing: boolean, packages: string[] }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', SCRIPT], {
      cwd: root,
      env: { PATH: process.env.PATH, CASE_ENV: JSON.stringify({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', ...env }) },
      timeout: 30_000
    }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`${err.message}\n${stderr}`))
      resolve(JSON.parse(stdout) as { tracing: boolean, packages: string[] })
    })
  })
}

const SDK = '@opentelemetry/sdk-node'
const EXPORTERS = ['@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/exporter-trace-otlp-http', '@opentelemetry/exporter-trace-otlp-grpc', '@grpc/grpc-js', '@opentelemetry/otlp-transformer', '@opentelemetry/otlp-exporter-base']

test('metrics only (OTEL_TRACES_EXPORTER=none) loads neither the SDK nor any exporter', async () => {
  const { tracing, packages } = await loadedWith({ OTEL_TRACES_EXPORTER: 'none' })
  assert.equal(tracing, false)
  assert.ok(packages.includes('prom-client'), 'the resolve hook saw the packages telemetry.ts loads')
  for (const p of [SDK, ...EXPORTERS]) assert.ok(!packages.includes(p), `${p} was loaded`)
})

test('OTEL_SDK_DISABLED=true loads neither the SDK nor any exporter', async () => {
  const { tracing, packages } = await loadedWith({ OTEL_SDK_DISABLED: 'true' })
  assert.equal(tracing, false)
  for (const p of [SDK, ...EXPORTERS]) assert.ok(!packages.includes(p), `${p} was loaded`)
})

// The positive control: the hook does see the SDK when tracing is on. (NodeSDK itself imports every
// exporter it can build from the environment, so with tracing on they all load, whichever is used.)
test('tracing over OTLP loads the SDK and its exporters', async () => {
  const { tracing, packages } = await loadedWith({ OTEL_TRACES_EXPORTER: 'otlp' })
  assert.equal(tracing, true)
  assert.ok(packages.includes(SDK))
  // The OTLP/HTTP exporter: the library's delegate, with the journey's serializer (otlp-trace-serializer.ts).
  assert.ok(packages.includes('@opentelemetry/otlp-exporter-base'))
})
