// The accept strategies that run several processes: each starts, serves HTTP and HTTPS, and its merged
// /metrics count connections per worker that add up to the connections the test made. Spans carry
// the worker that served them; SIGTERM drains every worker and the primary exits 0.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage } from 'node:http'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { after, test } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { gunzipSync } from 'node:zlib'
import { Agent, request } from 'undici'
import { freePort, freePorts } from '../experiments/lib/server.ts'
import { killAll, run, start } from './helpers/process.ts'
import { PROC_DUTY } from '../src/journey/kernel-sampler.ts'

async function fixedPorts (): Promise<Record<string, string>> {
  const [http, https] = await freePorts(2)
  return { HTTP_PORT: String(http), HTTPS_PORT: String(https) }
}

after(killAll)

/**
 * `n` TLS connections to `port`, one after the other: the certificates seen on full handshakes (no session
 * offered), or, when `resume`, how many resumed the session the connection before them received.
 */
async function tlsVisits (port: number, n: number, resume: boolean): Promise<{ fingerprints: Set<string>, resumed: number }> {
  const fingerprints = new Set<string>()
  let session: Buffer | undefined
  let resumed = 0
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ...(resume ? { session } : {}) }, () => {
        if (s.isSessionReused()) resumed++
        else fingerprints.add(s.getPeerX509Certificate()!.fingerprint256)
        // TLS 1.3 sends its tickets after the handshake: a request and its answer make sure one came.
        s.end('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
      })
      s.on('session', (t: Buffer) => { session = t })
      s.on('error', reject)
      s.resume()
      s.on('close', () => resolve())
    })
  }
  return { fingerprints, resumed }
}

function perWorker (metrics: string, listener: string): Map<string, number> {
  const out = new Map<string, number>()
  const re = new RegExp(`^journey_connections_accepted_total\\{(?=[^}]*listener="${listener}")(?=[^}]*worker="(\\d+)")[^}]*\\} (\\d+)$`, 'gm')
  for (const m of metrics.matchAll(re)) out.set(m[1]!, Number(m[2]))
  return out
}

for (const strategy of ['cluster-rr', 'cluster-shared', 'reuseport'] as const) {
  test(`ACCEPT_STRATEGY=${strategy}: two workers serve HTTP and HTTPS; per-worker accept counts add up`, async (ctx) => {
    const spans: any[] = []
    const receiver = createHttpServer((req: IncomingMessage, res) => {
      let body = ''
      req.on('data', (d: Buffer) => { body += d.toString() })
      req.on('end', () => { spans.push(...JSON.parse(body).resourceSpans); res.end('{}') })
    })
    await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve))
    ctx.after(() => { receiver.close() }) // also when an assertion fails: a listening receiver held the test file open
    const s = await start({
      ACCEPT_STRATEGY: strategy,
      WORKERS: '2',
      // reuseport binds each worker's own socket: the ports must be fixed.
      ...(strategy === 'reuseport' ? await fixedPorts() : {}),
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      LOG_LEVEL: 'info'
    })
    const made = { http: 16, https: 6 }
    for (const [listener, n] of Object.entries(made)) {
      const base = listener === 'http' ? `http://127.0.0.1:${s.ports.http}` : `https://127.0.0.1:${s.ports.https}`
      for (let i = 0; i < n; i++) {
        const fresh = new Agent({ connect: { rejectUnauthorized: false }, pipelining: 0 }) // one connection each
        const r = await request(`${base}/`, { dispatcher: fresh })
        assert.equal(r.statusCode, 200)
        await r.body.text()
        await fresh.close()
      }
    }
    // As Prometheus scrapes: gzip asked for, and the primary's merged exposition sent so.
    const scraped = await request(`http://127.0.0.1:${s.ports.metrics}/metrics`, { headers: { 'accept-encoding': 'gzip' } })
    assert.equal(scraped.headers['content-encoding'], 'gzip')
    const metrics = gunzipSync(Buffer.from(await scraped.body.arrayBuffer())).toString()
    for (const [listener, n] of Object.entries(made)) {
      const counts = perWorker(metrics, listener)
      ctx.diagnostic(`${listener}: ${[...counts].map(([w, c]) => `worker ${w} accepted ${c}`).join(', ')}`)
      assert.equal([...counts.values()].reduce((a, b) => a + b, 0), n, `${listener} connections add up across workers`)
      for (const w of counts.keys()) assert.ok(['1', '2'].includes(w))
      if (strategy === 'cluster-rr') assert.equal(counts.size, 2, 'round robin gives both workers connections')
    }
    assert.deepEqual(await (await request(`http://127.0.0.1:${s.ports.metrics}/readyz`)).body.json(), { status: 'ready', workers: 2 })
    // The primary's index does not send anyone to a journey page it does not have.
    const index = await (await request(`http://127.0.0.1:${s.ports.metrics}/`)).body.text()
    assert.match(index, /^\/journey +none here: the journey page shows one process/m)
    assert.match(index, /^\/metrics +Prometheus metrics of every worker, merged \(text format\)$/m)

    // The workers serve as one TLS server: one certificate (generated once, by the primary), and a session
    // one worker began resumes on the other. Before, each worker generated its own certificate, and with
    // reuseport only a connection the kernel sent back to the issuing worker resumed.
    const full = await tlsVisits(s.ports.https, 8, false)
    assert.equal(full.fingerprints.size, 1, `one certificate whichever worker answers: ${[...full.fingerprints].join(', ')}`)
    assert.equal((s.logs().match(/generated a self-signed development certificate/g) ?? []).length, 1)
    const resumedBy = (text: string): Map<string, number> => {
      const out = new Map<string, number>()
      const re = /^journey_tls_handshake_duration_seconds_count\{(?=[^}]*resumed="true")(?=[^}]*worker="(\d+)")[^}]*\} (\d+)$/gm
      for (const m of text.matchAll(re)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]))
      return out
    }
    const before = resumedBy(await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text())
    const visits = 13
    const resumption = await tlsVisits(s.ports.https, visits, true)
    const later = resumedBy(await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text())
    const workersResuming = [...later].filter(([w, c]) => c > (before.get(w) ?? 0)).map(([w]) => w)
    ctx.diagnostic(`TLS: ${resumption.resumed} of ${visits - 1} connections resumed, on workers ${workersResuming.join(', ')}`)
    assert.equal(resumption.resumed, visits - 1, 'every connection after the first resumed its session')
    if (strategy !== 'cluster-shared') assert.equal(workersResuming.length, 2, 'both workers resumed sessions (the other one\'s tickets too)')

    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0, 'the primary drains its workers and exits 0')
    const workers = new Set(spans.map(rs => rs.resource.attributes.find((a: any) => a.key === 'journey.worker')?.value.stringValue))
    assert.ok(workers.size >= 1 && [...workers].every(w => w === '1' || w === '2'), `spans carry their worker: ${[...workers]}`)
    if (strategy === 'cluster-rr') assert.equal(workers.size, 2)
    assert.match(s.logs(), /"role":"primary".*"msg":"stopped"/)
    assert.equal((s.logs().match(/"worker":\d,"msg":"stopped"/g) ?? []).length, 2, 'both workers stopped gracefully')
  })
}

test('a worker that cannot start (port in use) stops the whole cluster with exit 2 and one line naming it', async () => {
  const blocker = createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
  const port = (blocker.address() as AddressInfo).port
  const p = run({ ACCEPT_STRATEGY: 'reuseport', WORKERS: '2', HTTP_PORT: String(port), HTTPS_PORT: String(await freePort()), LOG_LEVEL: 'info' })
  const exited = await Promise.race([p.exited, new Promise<'hung'>(resolve => setTimeout(resolve, 20_000, 'hung').unref())])
  blocker.close()
  assert.notEqual(exited, 'hung', 'the primary did not restart failing workers forever')
  assert.equal((exited as { code: number }).code, 2)
  assert.match(p.output(), new RegExp(`configuration error: HTTP_PORT=${port} cannot be used`))
})

test('a cluster\'s metrics port in use: one line naming it, exit 2', async () => {
  const blocker = createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
  const port = (blocker.address() as AddressInfo).port
  const p = run({ ACCEPT_STRATEGY: 'cluster-rr', WORKERS: '2', HTTP_PORT: '0', HTTPS_PORT: '0', METRICS_PORT: String(port), LOG_LEVEL: 'info' })
  const exited = await Promise.race([p.exited, new Promise<'hung'>(resolve => setTimeout(resolve, 20_000, 'hung').unref())])
  blocker.close()
  assert.notEqual(exited, 'hung')
  assert.equal((exited as { code: number }).code, 2)
  assert.match(p.output(), new RegExp(`configuration error: METRICS_PORT=${port} cannot be used on 127.0.0.1: EADDRINUSE`))
  assert.doesNotMatch(p.output(), /at .*node:net/, 'no stack trace')
})

// Under round-robin the workers have no listening socket of their own: connections wait in the primary's
// accept queue, and every worker reports that queue (found among its parent's sockets), as cluster-shared
// workers report the queue they share. Stopping the primary lets a queue build in it, for real.
test('ACCEPT_STRATEGY=cluster-rr: every worker reports the primary\'s accept queue, where the connections wait', { skip: process.platform !== 'linux' && 'needs Linux /proc' }, async (ctx) => {
  const s = await start({ ACCEPT_STRATEGY: 'cluster-rr', WORKERS: '2', JOURNEY_KERNEL_SAMPLE_MS: '5' })
  const scrape = async (): Promise<string> => await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text()
  const byWorker = (text: string, name: string, listener: string): Map<string, number> => {
    const out = new Map<string, number>()
    const re = new RegExp(`^${name}\\{(?=[^}]*listener="${listener}")(?=[^}]*worker="(\\d+)")[^}]*\\} (\\d+)$`, 'gm')
    for (const m of text.matchAll(re)) out.set(m[1]!, Number(m[2]))
    return out
  }
  // The samplers' first samples (a worker's sampler starts once its servers listen).
  let text = await scrape()
  // Up to 10 s: a thread can take seconds to start on a busy machine.
  for (const deadline = Date.now() + 10_000; byWorker(text, 'journey_accept_queue_peak', 'http').size < 2;) {
    assert.ok(Date.now() < deadline, `both workers report a peak:\n${text.split('\n').filter(l => l.includes('accept_queue')).join('\n')}`)
    await new Promise(resolve => setTimeout(resolve, 50))
    text = await scrape()
  }
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))
  for (const listener of ['http', 'https']) {
    assert.deepEqual([...byWorker(text, 'journey_accept_queue_length', listener)].sort(), [['1', 0], ['2', 0]], `${listener}: nothing waiting`)
    assert.deepEqual([...byWorker(text, 'journey_accept_queue_capacity', listener)].sort(), [['1', Math.min(511, somaxconn)], ['2', Math.min(511, somaxconn)]])
  }

  // The primary stopped: the kernel completes the handshakes and queues them in its socket.
  const sockets: Socket[] = []
  process.kill(s.child.pid!, 'SIGSTOP')
  try {
    await Promise.all(Array.from({ length: 5 }, async () => await new Promise<void>((resolve, reject) => {
      const c = connect(s.ports.http, '127.0.0.1', resolve)
      c.on('error', reject)
      sockets.push(c)
    })))
    // Long enough for several samples: a sampler reads /proc at most PROC_DUTY of a core, and this host's
    // /proc/net/tcp may hold thousands of other tests' TIME_WAIT rows.
    const t = performance.now()
    readFileSync('/proc/net/tcp')
    readFileSync('/proc/net/tcp6')
    const held = Math.min(10_000, Math.max(200, 3 * (performance.now() - t) / PROC_DUTY))
    ctx.diagnostic(`the primary stopped for ${held.toFixed(0)} ms`)
    await new Promise(resolve => setTimeout(resolve, held))
  } finally {
    process.kill(s.child.pid!, 'SIGCONT')
  }
  const peaks = byWorker(await scrape(), 'journey_accept_queue_peak', 'http')
  for (const c of sockets) c.destroy()
  ctx.diagnostic(`peaks: ${[...peaks].map(([w, p]) => `worker ${w} ${p}`).join(', ')}`)
  assert.deepEqual([...peaks].sort(), [['1', 5], ['2', 5]], 'each worker saw the five connections waiting in the primary\'s queue')
  s.child.kill('SIGTERM')
  assert.equal((await s.exited).code, 0)
})
