// Every waterfall held against what its client timed, with HTTP/2 over TLS among the clients (test/helpers/client-timed.ts).
import { clientTimedTest } from '../helpers/client-timed.ts'

clientTimedTest('default', true)
