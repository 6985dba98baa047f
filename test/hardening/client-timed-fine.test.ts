// Every waterfall held against what its client timed, in fine precision mode (test/helpers/client-timed.ts).
import { clientTimedTest } from '../helpers/client-timed.ts'

clientTimedTest('fine')
