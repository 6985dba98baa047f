// @ts-check
// Runs in a piscina worker thread: the same CPU burn as the event-loop variant, off the loop.
//
// Plain JavaScript (type-checked through JSDoc), unlike the rest of the app: a worker whose entry or any
// module it imports is a .ts file starts Node's TypeScript stripper in its own isolate, ≈ 10 MB of RSS per
// thread here, and the app keeps WORKER_THREADS (2) of them running in every process.
import { burn } from './burn.js'

/**
 * @param {{ ms: number }} task
 * @returns {number} the iterations done
 */
export default function ({ ms }) {
  return burn(ms)
}
