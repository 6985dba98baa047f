// Debian's headless Chromium, driven by playwright-core, for the tests that look at what a browser sees.
import { existsSync } from 'node:fs'
import type { Browser } from 'playwright-core'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Why the browser tests skip here, or false. CI installs Chromium: there a missing browser is a failure, not
 * a skip. Elsewhere the test says why it skips, once per file that asks.
 */
export function browserSkip (): string | false {
  const skip = !existsSync(CHROMIUM) && process.env.CI !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`
    : false
  if (skip !== false) console.log(`# skipping the browser test: ${skip}`)
  return skip
}

/** Headless Chromium with the flags this machine needs. Close it when done. */
export async function launchChromium (): Promise<Browser> {
  const { chromium } = await import('playwright-core')
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
}
