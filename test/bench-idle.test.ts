// The benches hold the CPUs in polling idle through the kernel's PM QoS interface (bench/idle.ts): the
// kernel's own answer on /dev/cpu_dma_latency must say 0 µs while it is held and what it said before once
// it is let go, or the benches would print a condition they did not measure under.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cpuLatencyTargetUs, holdIdle, whyNoPolling } from '../bench/idle.ts'

function whyNot (): string | undefined {
  const no = whyNoPolling()
  if (no !== undefined) return `${no}: the benches measure with halting idle here, and say so`
  // A bench running beside the test holds it already: then holding it changes nothing the test could see.
  if (cpuLatencyTargetUs() === 0) return 'another process holds /dev/cpu_dma_latency at 0 µs (a bench running?)'
  return undefined
}

test('polling idle is held while the bench runs and let go after', { skip: whyNot() }, () => {
  const before = cpuLatencyTargetUs()
  assert.ok(before !== undefined && before > 0, `the kernel's target before: ${before}`)
  const held = holdIdle('poll')
  try {
    assert.equal(held.mode, 'poll', held.description)
    assert.equal(cpuLatencyTargetUs(), 0, 'the kernel holds idle CPUs to 0 µs wake-up latency')
    // A bench asked to halt while another process holds polling must not claim to halt.
    const other = holdIdle('halt')
    assert.equal(other.mode, 'poll', other.description)
    assert.match(other.description, /another process/)
  } finally {
    held.release()
    held.release() // twice is harmless
  }
  assert.equal(cpuLatencyTargetUs(), before, 'released: the target is what it was')
  assert.equal(holdIdle('halt').mode, 'halt')
})
