// Runs in a piscina worker thread: the same CPU burn as the event-loop variant, off the loop.
import { burn } from './burn.ts'

export default function ({ ms }: { ms: number }): number {
  return burn(ms)
}
