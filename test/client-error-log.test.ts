// Client errors in the log: the first of each code at once, then a count a minute, so a flood of bad input
// writes a bounded number of lines however fast it comes. A real pino logger writing to a stream.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import { ClientErrorLog } from '../src/client-error-log.ts'

function capture (): { log: pino.Logger, lines: () => Array<Record<string, unknown>> } {
  const out: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { out.push(chunk.toString()); cb() } })
  return { log: pino({ level: 'info' }, stream), lines: () => out.join('').trim().split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>) }
}

const error = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`Parse Error: ${code}`), { code })

test('a flood of one bad request: one line at once, then one count per interval; a quiet code is said at once again', async () => {
  const { log, lines } = capture()
  const errors = new ClientErrorLog(log, 100)
  for (let i = 0; i < 1000; i++) errors.note(error('HPE_INVALID_METHOD'), 'http')
  errors.note(error('HPE_HEADER_OVERFLOW'), 'https')
  assert.deepEqual(lines().map(l => [l.code, l.reason, l.listener]), [['HPE_INVALID_METHOD', 'bad_request', 'http'], ['HPE_HEADER_OVERFLOW', 'header_overflow', 'https']])
  // The interval's timer sums up the rest (polled: a loaded machine may run it late).
  for (let i = 0; lines().length < 3; i++) { assert.ok(i < 100, 'the summary line came'); await sleep(20) }
  assert.deepEqual(lines().slice(2).map(l => [l.code, l.count]), [['HPE_INVALID_METHOD', 999]], 'the rest, summed; nothing for a code that had no more')
  errors.flush() // a quiet interval for both: they are forgotten
  errors.note(error('HPE_INVALID_METHOD'), 'http')
  assert.equal(lines().length, 4, 'said at once again')
  assert.equal(lines()[3]!.err, 'Parse Error: HPE_INVALID_METHOD')
  errors.close()
  assert.equal(lines().length, 4, 'close says what is pending, and nothing was')
})

test('close sums up what is pending, so a shutdown loses no count', () => {
  const { log, lines } = capture()
  const errors = new ClientErrorLog(log, 60_000)
  errors.note(error('ERR_HTTP_REQUEST_TIMEOUT'), 'http')
  errors.note(error('ERR_HTTP_REQUEST_TIMEOUT'), 'http')
  errors.note(error('ERR_HTTP_REQUEST_TIMEOUT'), 'http')
  errors.close()
  assert.deepEqual(lines().map(l => l.count ?? 'first'), ['first', 2])
})
