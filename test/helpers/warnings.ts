// The plugin's set-up warnings (process.emitWarning with a REQUEST_JOURNEY_* code), as a test reads them:
// collected from Node's 'warning' event, which fires whatever --no-warnings says, in the order said.
export interface JourneyWarning { code: string, message: string }

/** Starts collecting; the array fills as warnings are said (empty it with `length = 0` between cases). */
export function journeyWarnings (): JourneyWarning[] {
  const said: JourneyWarning[] = []
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code?.startsWith('REQUEST_JOURNEY') === true) said.push({ code: w.code, message: w.message })
  })
  return said
}
