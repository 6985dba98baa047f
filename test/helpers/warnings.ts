// The plugin's set-up warnings (process.emitWarning with a REQUEST_JOURNEY_* code), as a test reads them:
// collected from Node's 'warning' event, which fires whatever --no-warnings says, in the order said.
export interface JourneyWarning { code: string, message: string }

// What the machine lacks rather than what the set-up under test got wrong (a checkout built without a
// compiler has no TCP_INFO addon): test/journey/unmeasured.test.ts holds these.
const MACHINE = new Set(['REQUEST_JOURNEY_NO_TCP_INFO', 'REQUEST_JOURNEY_PARSER_UNSEEN'])

/** Starts collecting; the array fills as warnings are said (empty it with `length = 0` between cases). */
export function journeyWarnings (): JourneyWarning[] {
  const said: JourneyWarning[] = []
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code?.startsWith('REQUEST_JOURNEY') === true && !MACHINE.has(w.code)) said.push({ code: w.code, message: w.message })
  })
  return said
}
