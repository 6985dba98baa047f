// Experiment `hooks`: an auth check in an onRequest hook of the app's own, taking longer and longer.
//
// Hypothesis: time spent in a hook is in no stage. The client waits longer, and so does the request
// duration the server reports, but every stage stays flat; the journey shows the difference as the gap
// between parse and decode, `journey_gap_duration_seconds{gap="hooks"}`. Without that gap, the stage
// histograms would account for only part of what the client waited, and nothing would say where the rest went.
import { experiment } from './lib/experiment.ts'
import type { Row } from './lib/report.ts'
import { meanMs } from './lib/metrics.ts'
import { interleaved, warmUp, withOneConnection } from './lib/one-at-a-time.ts'

const STAGES_FROM_READ = ['read', 'parse', 'decode', 'handler', 'serialize', 'write']

export const hooks = experiment({
  name: 'hooks',
  hypothesis: 'An app\'s own hook (an auth check in onRequest) is in no stage: the client and the request duration grow by its time, the stages stay flat, and the hooks gap holds the difference.',
  options: { requests: 40, rounds: 4, warmup: 1, warmupRounds: 500 },
  chart: { title: 'GET /account with an auth hook of 0, 5 and 20 ms (means)', unit: 'ms', series: [{ label: 'client: request time', key: 'client mean ms' }, { label: 'server: hooks gap', key: 'hooks gap mean ms' }, { label: 'server: stages from read on', key: 'stages mean ms' }] },
  async run (opts, progress) {
    const rows: Row[] = []
    const headers = { authorization: 'Bearer experiment' }
    await withOneConnection({}, async (server, agent) => {
      // Warmed on the 0 ms hook alone: the variants run the same code, and 500 rounds of the 20 ms one would take 10 s.
      await warmUp(server, agent, [{ path: '/account?auth_ms=0', opts: { headers } }], opts.warmupRounds)
      const hooks = [0, 5, 20]
      const measured = await interleaved(server, agent, hooks.map(authMs => ({ path: `/account?auth_ms=${authMs}`, opts: { headers } })), {
        requests: opts.requests, rounds: opts.rounds, warmup: opts.warmup, label: 'hooks', progress
      })
      for (const [i, authMs] of hooks.entries()) {
        const variant = `auth hook ${authMs} ms`
        const m = measured[i]!
        const stage = (s: string): number => m.stageMeanMs('/account', s)
        rows.push({
          variant,
          failed: m.failed,
          'client mean ms': m.clientMeanMs,
          'request duration mean ms': meanMs(m.before, m.after, 'http_server_request_duration_seconds', { http_route: '/account' }),
          'hooks gap mean ms': meanMs(m.before, m.after, 'journey_gap_duration_seconds', { route: '/account', gap: 'hooks' }),
          'stages mean ms': STAGES_FROM_READ.reduce((n, s) => n + (Number.isNaN(stage(s)) ? 0 : stage(s)), 0),
          'handler mean ms': stage('handler')
        })
      }
    })
    return {
      rows,
      notes: [
        'One keep-alive connection, one request at a time, each with an Authorization header (so every one reaches the handler); the variants take turns (`rounds`).',
        'Means from the histograms\' _sum/_count. Request duration = stages from read on + hooks gap (+ pipelined gap, none here), to the nanosecond.'
      ]
    }
  }
})
