// The usual setup the bench measures must load the OpenTelemetry SDK once, as an app that installs it does.
// A patch release of one exporter (0.301.1 beside sdk-node's 0.301.0) once left npm holding a second copy
// of the SDK under it (and sdk-node a copy of the exporter of its own): the usual setup then loaded both,
// ≈ 1.5 MB more heap and 3–5 MB more RSS than the app it stands for, counted against it in the bench's
// memory column.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import { root } from '../bench/servers.ts'

/** The packages bench/server.ts's usual setup imports. */
const USUAL = ['@opentelemetry/sdk-node', '@opentelemetry/instrumentation-http', '@opentelemetry/exporter-trace-otlp-proto']
/** What each of them resolves for itself; one file per name means one copy. */
const SHARED = [
  '@opentelemetry/sdk-trace', '@opentelemetry/core', '@opentelemetry/otlp-transformer', '@opentelemetry/otlp-exporter-base', '@opentelemetry/resources',
  // sdk-node imports the exporters it can build from the environment, whichever one the app hands it.
  '@opentelemetry/exporter-trace-otlp-proto'
]

/** The folder a package's entry file is in, up to the package's own (their exports hide package.json). */
function packageDir (entry: string, name: string): string {
  const at = entry.lastIndexOf(`/node_modules/${name}/`)
  assert.ok(at >= 0, `${name} resolves outside node_modules: ${entry}`)
  return entry.slice(0, at + `/node_modules/${name}`.length)
}

test('the usual setup\'s packages share one copy of the OpenTelemetry SDK with the app', () => {
  const fromRoot = createRequire(`${root}/package.json`)
  for (const name of SHARED) {
    const own = fromRoot.resolve(name)
    for (const user of USUAL) {
      // Resolved from inside the user's own folder, as its imports are: a nested copy would be found first.
      // No pair is skipped (one that failed to resolve would stop the test, not pass it): what the root finds,
      // every package below it finds too, its own copy or the root's.
      const fromUser = createRequire(`${packageDir(fromRoot.resolve(user), user)}/package.json`)
      assert.equal(fromUser.resolve(name), own, `${user} loads its own ${name}: run npm dedupe, or align the OpenTelemetry versions in package.json`)
    }
  }
})
