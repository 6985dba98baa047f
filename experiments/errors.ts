// Experiment `errors`: what a rejected request costs, and where. A body that is not JSON, and one that
// fails the route's schema, against a valid one; Fastify's default error handler logs a 4xx at `info`,
// so the same bad body runs at LOG_LEVEL=info and at warn.
//
// Hypothesis: a rejected body fails decode no slower than a valid one parses; what Fastify does after the
// error — logging it with its stack, serializing the reply — is a cost of its own, the error_handler gap,
// which shrinks to a fraction without the log line. And a body that is not JSON costs the client more than
// the server shows: Fastify answers it with `connection: close` (the client may still be sending), so the
// next request pays a new connection — its accept stage, and on HTTPS a TLS handshake.
import { experiment } from './lib/experiment.ts'
import type { Row } from './lib/report.ts'
import { delta, meanMs } from './lib/metrics.ts'
import { interleaved, warmUp, withOneConnection } from './lib/one-at-a-time.ts'

interface Case { variant: string, logLevel: string, body: string, status: number, https?: true }

const VALID = JSON.stringify({ message: 'hello' })
const NOT_JSON = '{"message":'
// Short names: they label the chart's bars. Logged at info unless they say warn.
const CASES: readonly Case[] = [
  { variant: 'valid', logLevel: 'info', body: VALID, status: 200 },
  { variant: 'not JSON', logLevel: 'info', body: NOT_JSON, status: 400 },
  { variant: 'bad schema', logLevel: 'info', body: JSON.stringify({ note: 'no message' }), status: 400 },
  { variant: 'valid, HTTPS', logLevel: 'info', body: VALID, status: 200, https: true },
  { variant: 'not JSON, HTTPS', logLevel: 'info', body: NOT_JSON, status: 400, https: true },
  { variant: 'not JSON, warn', logLevel: 'warn', body: NOT_JSON, status: 400 }
]

export const errors = experiment({
  name: 'errors',
  hypothesis: 'A rejected body fails decode no slower than a valid one parses; Fastify\'s error handling after it (the error\'s log line, the reply) is the error_handler gap, which shrinks when 4xx are not logged; a body that is not JSON also closes the connection, so the next request pays a new one (on HTTPS, a handshake).',
  options: { requests: 200, rounds: 10, warmup: 2, warmupRounds: 500 },
  chart: { title: 'POST /echo, valid and rejected bodies (means; logged at info unless "warn")', unit: 'ms', series: [{ label: 'decode', key: 'decode mean ms' }, { label: 'error_handler gap', key: 'error_handler gap mean ms' }, { label: 'request duration', key: 'request duration mean ms' }, { label: 'client: request time', key: 'client mean ms' }] },
  async run (opts, progress) {
    const rows: Row[] = []
    // One server per log level, each loaded over one keep-alive connection, one request at a time.
    // undici keeps TLS sessions: a new connection resumes, as a browser's would.
    for (const logLevel of ['info', 'warn']) {
      await withOneConnection({ LOG_LEVEL: logLevel }, async (server, agent) => {
        // A --url target without --https-url has no HTTPS listener to load: its HTTPS rows are left out.
        const cases = CASES.filter(x => x.logLevel === logLevel && (x.https !== true || !Number.isNaN(server.https)))
        const send = (c: Case): { body: string, https?: true, headers: Record<string, string> } => ({ body: c.body, https: c.https, headers: { 'content-type': 'application/json' } })
        await warmUp(server, agent, cases.map(c => ({ path: '/echo', opts: send(c) })), opts.warmupRounds)
        const measured = await interleaved(server, agent, cases.map(c => ({ path: '/echo', opts: send(c), status: c.status })), {
          requests: opts.requests, rounds: opts.rounds, warmup: opts.warmup, label: `errors (${logLevel})`, progress
        })
        for (const [i, c] of cases.entries()) {
          const m = measured[i]!
          const route = { route: '/echo', method: 'POST' }
          const gap = meanMs(m.before, m.after, 'journey_gap_duration_seconds', { ...route, gap: 'error_handler' })
          rows.push({
            variant: c.variant,
            status: c.status,
            failed: m.failed,
            'client mean ms': m.clientMeanMs,
            // Accepted during its counted requests (each turn's warm-up reopens what the turn before closed): Fastify closes one after a body it could not parse.
            connections: delta(m.before, m.after, 'journey_connections_accepted_total'),
            'TLS handshakes': delta(m.before, m.after, 'journey_tls_handshake_duration_seconds_count'),
            'of them resumed': delta(m.before, m.after, 'journey_tls_handshake_duration_seconds_count', { resumed: 'true' }),
            'TLS handshake mean ms': c.https === true ? meanMs(m.before, m.after, 'journey_tls_handshake_duration_seconds') : NaN,
            'request duration mean ms': meanMs(m.before, m.after, 'http_server_request_duration_seconds', { http_route: '/echo', http_response_status_code: String(c.status) }),
            'decode mean ms': m.stageMeanMs('/echo', 'decode'),
            // A valid body has no such gap (NaN: no observation): 0 in the table.
            'error_handler gap mean ms': Number.isNaN(gap) ? 0 : gap,
            'handler mean ms': m.stageMeanMs('/echo', 'handler')
          })
        }
      })
    }
    return {
      rows,
      notes: [
        'One keep-alive connection, one request at a time, POST /echo (a JSON schema with a required `message`); the variants take turns (`rounds`), each turn after `warmup` uncounted requests.',
        'Decode: preParsing → preHandler, or → the error (onError) when the body is rejected; error_handler gap: from the error to the reply\'s onSend (docs/stages.md).',
        'The server logs to /dev/null here; a log line to a pipe or a terminal costs more. Fastify logs a 4xx at info and a 5xx at error.',
        'Connections: accepted during the variant\'s counted requests. After a body its parser rejected, Fastify answers `connection: close` (the client may still be sending), so the client\'s next request opens a new one: client time the server\'s request duration does not hold (it is the next request\'s accept stage and, on HTTPS, its tls stage: undici resumes its TLS session, as browsers do).'
      ]
    }
  }
})
