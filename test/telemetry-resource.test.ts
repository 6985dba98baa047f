// The resource the server's spans carry: the host detector's host.id is left out where no machine id file
// exists (most container images), rather than offered as undefined and warned about at every start.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api'
import { detectResources, hostDetector } from '@opentelemetry/resources'
import { withoutMissingHostId } from '../src/telemetry.ts'

async function detect (exists: (path: string) => boolean): Promise<{ attributes: Record<string, unknown>, warnings: string[] }> {
  const warnings: string[] = []
  const logger: DiagLogger = { error: () => {}, warn: (m: string) => { warnings.push(m) }, info: () => {}, debug: () => {}, verbose: () => {} }
  diag.setLogger(logger, DiagLogLevel.WARN)
  try {
    const resource = detectResources({ detectors: [withoutMissingHostId(hostDetector, exists)] })
    await resource.waitForAsyncAttributes?.()
    return { attributes: { ...resource.attributes }, warnings }
  } finally {
    diag.disable()
  }
}

test('without a machine id file, host.id is left out and nothing is warned; host.name stays', { skip: process.platform !== 'linux' && 'Linux only' }, async () => {
  const asked: string[] = []
  const { attributes, warnings } = await detect(path => { asked.push(path); return false })
  assert.deepEqual(asked, ['/etc/machine-id', '/var/lib/dbus/machine-id'])
  assert.equal('host.id' in attributes, false)
  assert.equal(typeof attributes['host.name'], 'string')
  assert.deepEqual(warnings, [])
})

test('with one, the detector\'s host.id is kept as it read it', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const { readFileSync } = await import('node:fs')
  let id: string
  try { id = readFileSync('/etc/machine-id', 'utf8').trim() } catch { return t.skip('this machine has no /etc/machine-id') }
  const { attributes } = await detect(() => true)
  assert.equal(attributes['host.id'], id)
})
