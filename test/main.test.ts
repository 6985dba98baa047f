// The server as a user runs it: a real process, curl, signals, a real OTLP/HTTP endpoint.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool, request } from 'undici'
import { collectorThatNeverAnswers, killAll, run, start, startTraced } from './helpers/process.ts'
import { connect } from './helpers/raw.ts'
import { h2 as h2Request } from './helpers/h2.ts'
import { scrape, sum } from '../experiments/lib/metrics.ts'
import { CLK_TCK, hostStealTicks } from '../bench/servers.ts'
import { tcpInfoUnavailable } from '../src/journey/tcp-info.ts'

const exec = promisify(execFile)
const FAILED_START = fileURLToPath(new URL('./helpers/failed-start.ts', import.meta.url))
after(killAll)

describe('configuration errors stop start-up with one line naming the variable', () => {
  for (const [env, pattern] of [
    [{ HTTP_PORT: 'notaport' }, /HTTP_PORT="notaport" is not valid: expected an integer from 0 to 65535/],
    [{ HTTPS_PORT: '70000' }, /HTTPS_PORT=70000 is out of range/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud" is not valid: expected one of fatal, error, warn, info/],
    [{ TLS_CERT: '/tmp/x.pem' }, /TLS_CERT and TLS_KEY must be set together/],
    [{ HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '30000' }, /HEADERS_TIMEOUT_MS=60000 must not exceed REQUEST_TIMEOUT_MS=30000/],
    [{ JOURNEY_PRECISION: 'coarse' }, /JOURNEY_PRECISION="coarse" is not valid: expected one of default, fine/],
    [{ JOURNEY_EXPORT_THREAD: 'thread' }, /JOURNEY_EXPORT_THREAD="thread" is not valid: expected one of auto, worker, main/],
    [{ HTTP_PORT: '4000', HTTPS_PORT: '4000' }, /must differ/],
    [{ TLS_CERT: '/nonexistent/cert.pem', TLS_KEY: '/nonexistent/key.pem' }, /TLS_CERT=\/nonexistent\/cert.pem cannot be read: ENOENT/],
    [{ TLS_CERT: '/etc/hostname', TLS_KEY: '/etc/hostname' }, /TLS_CERT=\/etc\/hostname is not a PEM certificate/]
  ] as const) {
    test(Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' '), async () => {
      const p = run(env)
      const { code } = await p.exited
      assert.equal(code, 2)
      const lines = p.output().trim().split('\n')
      assert.equal(lines.length, 1, p.output())
      assert.match(lines[0]!, pattern)
    })
  }
})

test('OTEL_* values the SDK falls back from are said once at start-up, and the SDK\'s own warnings reach the log; serving goes on', async () => {
  const s = await start({ OTEL_TRACES_EXPORTER: 'zipkin,otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'not-a-url', OTEL_TRACES_SAMPLER: 'xray', OTEL_PROPAGATORS: 'foo' })
  const r = await request(`http://127.0.0.1:${s.ports.http}/`)
  assert.equal(r.statusCode, 200)
  await r.body.text()
  const warnings = s.logs().split('\n').filter(l => l.includes('"level":40')).map(l => (JSON.parse(l) as { msg: string }).msg)
  assert.deepEqual(warnings.sort(), [
    'OTEL_EXPORTER_OTLP_ENDPOINT="not-a-url" is not an http(s) URL: spans cannot be exported (they stay queued, then are counted as dropped)',
    'OTEL_TRACES_EXPORTER: "zipkin" not supported here (otlp, console, none); exporting with otlp only',
    'OTEL_TRACES_SAMPLER="xray" is not supported here (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio); using parentbased_always_on',
    'OpenTelemetry: Configuration: Could not parse environment-provided export URL: \'not-a-url\', falling back to undefined',
    'OpenTelemetry: Propagator "foo" requested through environment variable is unavailable.'
  ])
  s.child.kill('SIGTERM')
  assert.equal((await s.exited).code, 0)
})

test('a port in use stops start-up with one line naming the variable', async () => {
  const first = await start()
  const p = run({ HTTPS_PORT: String(first.ports.http) })
  // Once in CI (0 of 300 tries by hand) it ended by a signal instead: say which, and what it printed.
  const exit = await p.exited
  assert.equal(exit.code, 2, `exited by ${exit.signal ?? 'no signal'}; it printed:\n${p.output()}`)
  assert.match(p.output().trim().split('\n').at(-1)!, new RegExp(`HTTPS_PORT=${first.ports.http} cannot be used on 127.0.0.1: EADDRINUSE`))
  first.child.kill('SIGTERM')
  await first.exited
})

test('a start-up that fails releases what it began: its listener, the compute pool\'s threads', async () => {
  const first = await start()
  // HTTP binds first, then HTTPS fails on the port the first server holds.
  const p = run({ HTTPS_PORT: String(first.ports.http), WORKER_THREADS: '2' }, { main: FAILED_START })
  const exit = await Promise.race([p.exited, new Promise<'alive'>(resolve => setTimeout(resolve, 15_000, 'alive'))])
  first.child.kill('SIGTERM')
  await first.exited
  assert.notEqual(exit, 'alive', `still running 15 s after start-up failed; it printed:\n${p.output()}`)
  assert.match(p.output(), /start-up failed: HTTPS_PORT=\d+ cannot be used/)
  assert.doesNotMatch(p.output(), /held right after: .*(MessagePort|TCPServerWrap)/)
  assert.deepEqual(exit, { code: 0, signal: null }, p.output())
})

test('JOURNEY_ENABLED=false serves the same routes with no journey telemetry (the bench baseline)', async () => {
  const s = await start({ JOURNEY_ENABLED: 'false', OTEL_SDK_DISABLED: 'true' })
  const r = await request(`http://127.0.0.1:${s.ports.http}/`)
  assert.equal(r.statusCode, 200)
  await r.body.text()
  const metrics = await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text()
  assert.doesNotMatch(metrics, /journey_stage_duration_seconds_count/)
  assert.match(metrics, /nodejs_eventloop_lag_seconds/)
  s.child.kill('SIGTERM')
  // Once (1 of 6 fresh-clone CI runs, 2026-12-04) this process ended by a signal instead of exiting 0, and
  // nothing said which or why: the signal and the process's output now come with a failure.
  assert.deepEqual(await s.exited, { code: 0, signal: null }, s.logs())
})

describe('npm start', () => {
  test('curl over HTTPS and a gzip body over HTTP; Ctrl-C lets the in-flight request finish and exits 0', async () => {
    const s = await start({ LOG_LEVEL: 'info' })
    assert.match(s.logs(), /"fingerprint256":"([0-9A-F]{2}:){31}[0-9A-F]{2}"/, 'logs the certificate fingerprint')
    const https = await exec('curl', ['-sk', `https://localhost:${s.ports.https}/`])
    assert.equal(https.stdout, '{"hello":"journey"}')
    const dir = mkdtempSync(join(tmpdir(), 'journey-'))
    writeFileSync(join(dir, 'body.json.gz'), gzipSync(JSON.stringify({ message: 'compressed' })))
    const echo = await exec('curl', ['-s', `localhost:${s.ports.http}/echo`, '-H', 'content-type: application/json', '-H', 'content-encoding: gzip', '--data-binary', `@${join(dir, 'body.json.gz')}`])
    assert.deepEqual(JSON.parse(echo.stdout), { message: 'compressed' })

    const inflight = request(`http://127.0.0.1:${s.ports.http}/io?ms=400`).then(async r => ({ status: r.statusCode, body: await r.body.json() }))
    await new Promise(resolve => setTimeout(resolve, 100))
    s.child.kill('SIGINT')
    const done = await inflight
    assert.equal(done.status, 200, 'the in-flight request completed')
    assert.deepEqual(done.body, { ms: 400 })
    const { code } = await s.exited
    assert.equal(code, 0)
    assert.match(s.logs(), /"msg":"stopped"/)
    // One line per request at info.
    assert.equal(s.logs().split('\n').filter(l => l.includes('"msg":"request"')).length, 3)
  })

  test('HTTPS_HTTP2=true: curl gets HTTP/2 on the HTTPS port (no read stage), HTTP/1.1 when it asks; Ctrl-C lets an in-flight stream finish', async () => {
    const s = await start({ LOG_LEVEL: 'info', HTTPS_HTTP2: 'true', OTEL_TRACES_EXPORTER: 'none' })
    const base = `https://localhost:${s.ports.https}`
    const h2 = await exec('curl', ['-sk', '--http2', `${base}/`, '-w', ' %{http_version}'])
    assert.equal(h2.stdout, '{"hello":"journey"} 2')
    const h1 = await exec('curl', ['-sk', '--http1.1', `${base}/`, '-w', ' %{http_version}'])
    assert.equal(h1.stdout, '{"hello":"journey"} 1.1')
    // curl can exit before the server's log line reaches this process: wait for both lines.
    const requestLines = (): string[] => s.logs().split('\n').filter(l => l.includes('"msg":"request"'))
    for (let i = 0; i < 100 && requestLines().length < 2; i++) await new Promise(resolve => setTimeout(resolve, 50))
    const lines = requestLines().map(l => JSON.parse(l) as { stages: Record<string, number> })
    assert.deepEqual(lines.map(l => 'read' in l.stages), [false, true], 'HTTP/2: no read stage; HTTP/1.1: read')
    const m = await scrape(`http://127.0.0.1:${s.ports.metrics}/metrics`)
    assert.equal(sum(m, 'http_server_request_duration_seconds_count', { url_scheme: 'https' }), 2)

    // Bad HTTP/2 input is logged as well as counted, as the HTTP/1.1 parser's is: the preface, then a
    // SETTINGS frame of 3 bytes (settings come in 6-byte pairs).
    const { connect: connectTls } = await import('node:tls')
    const bad = connectTls({ port: s.ports.https, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2'] })
    bad.on('error', () => {})
    bad.on('secureConnect', () => bad.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from('000003040000000000000102', 'hex')])))
    bad.resume()
    await new Promise(resolve => bad.on('close', resolve))
    const errorLine = (): string | undefined => s.logs().split('\n').find(l => l.includes('"reason":"http2_protocol"'))
    for (let i = 0; i < 100 && errorLine() === undefined; i++) await new Promise(resolve => setTimeout(resolve, 20))
    assert.match(errorLine() ?? s.logs(), /"code":"ERR_HTTP2_ERROR".*"listener":"https"/)
    const counts = await scrape(`http://127.0.0.1:${s.ports.metrics}/metrics`)
    assert.equal(sum(counts, 'journey_connection_errors_total', { listener: 'https', reason: 'http2_protocol' }), 1, 'counted under the reason the line names')

    // A client that keeps its HTTP/2 session open between requests, as browsers do.
    const { connect: connectHttp2 } = await import('node:http2')
    const idle = connectHttp2(base, { rejectUnauthorized: false })
    const idleClosed = new Promise(resolve => idle.on('close', resolve))
    assert.equal(await h2Request(idle, '/'), 200)
    const inflight = exec('curl', ['-sk', '--http2', `${base}/io?ms=400`, '-w', ' %{http_version} %{http_code}'])
    await new Promise(resolve => setTimeout(resolve, 150))
    s.child.kill('SIGINT')
    assert.equal((await inflight).stdout, '{"ms":400} 2 200', 'the in-flight stream completed')
    assert.equal((await s.exited).code, 0)
    await idleClosed
    assert.match(s.logs(), /"msg":"stopped"/)
    assert.doesNotMatch(s.logs(), /shutdown deadline reached/, 'the idle session was closed, not left to the deadline')
  })

  test('HTTPS_HTTP2=true: a stream still running at the shutdown deadline is cut off with its session, and the process exits', { timeout: 30_000 }, async () => {
    const s = await start({ HTTPS_HTTP2: 'true', SHUTDOWN_TIMEOUT_MS: '300', OTEL_TRACES_EXPORTER: 'none', LOG_LEVEL: 'info' })
    const { connect: connectHttp2 } = await import('node:http2')
    const session = connectHttp2(`https://localhost:${s.ports.https}`, { rejectUnauthorized: false })
    session.on('error', () => {})
    const stream = session.request({ ':path': '/io?ms=5000' })
    stream.on('error', () => {})
    const ended = new Promise(resolve => stream.on('close', resolve))
    await new Promise(resolve => setTimeout(resolve, 200))
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0, 'an HTTP/2 server has no closeAllConnections(): its sessions are destroyed at the deadline')
    await ended
    assert.match(s.logs(), /shutdown deadline reached/)
    // One line for the request, the journey's: Fastify's own (on the stream's close) said status 200.
    const lines = s.logs().split('\n').filter(l => l.includes('"msg":"request"') && l.includes('"route":"/io"'))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0]!, /"status":"aborted"/)
    session.destroy()
  })

  test('MAX_CONNECTIONS=1: a second connection is closed unserved, said once in the log as a warning and counted; the other listener serves on', async () => {
    const s = await start({ MAX_CONNECTIONS: '1', OTEL_TRACES_EXPORTER: 'none' })
    const held = await connect(s.ports.http)
    await held.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await held.read(t => t.includes('journey'))
    // curl connects, sends its request and finds the connection closed under it (reset: its request was unread).
    for (let i = 0; i < 2; i++) await assert.rejects(exec('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${s.ports.http}/`]), /Command failed/)
    assert.equal((await exec('curl', ['-sk', `https://127.0.0.1:${s.ports.https}/`])).stdout, '{"hello":"journey"}', 'the limit is per listener')
    const lines = s.logs().split('\n').filter(l => l.includes('"code":"MAX_CONNECTIONS"'))
    assert.equal(lines.length, 1, 'said once; the rest is summed up a minute later')
    assert.match(lines[0]!, /"level":40,.*"maxConnections":1,"listener":"http"/)
    const m = await scrape(`http://127.0.0.1:${s.ports.metrics}/metrics`)
    assert.equal(sum(m, 'journey_connections_dropped_total', { listener: 'http' }), 2)
    assert.equal(sum(m, 'journey_connections_accepted_total', { listener: 'http' }), 1)
    held.close()
  })

  test('each request\'s log line carries its journey: the duration the histogram observed, and every stage; a cut-off request has its line too; malformed requests and failed handshakes are said once, then summed', async () => {
    const s = await start({ LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'none' })
    await exec('curl', ['-s', '-o', '/dev/null', `localhost:${s.ports.http}/compute?ms=30`])
    await new Promise(resolve => setTimeout(resolve, 100))
    const line = s.logs().split('\n').filter(l => l.includes('"msg":"request"')).map(l => JSON.parse(l) as {
      route: string, ms: number, stages: Record<string, number>, hooks_ms: number, accept_kernel_wait_ms?: number, read_kernel_wait_ms?: number
    }).find(l => l.route === '/compute')
    assert.ok(line !== undefined, s.logs())
    assert.deepEqual(Object.keys(line.stages), ['accept', 'read', 'parse', 'decode', 'handler', 'serialize', 'write'], 'a new connection\'s first request')
    // TCP_INFO at accept is read for every connection (the addon; CI has it): the first request's line says it.
    // The wait before read is read for traced requests only, and this server traces none.
    // (Whole ms; not bounded tighter: a CI machine running other test files may keep this server off its CPU.)
    if (tcpInfoUnavailable === undefined) assert.ok(Number.isInteger(line.accept_kernel_wait_ms) && line.accept_kernel_wait_ms! >= 0 && line.accept_kernel_wait_ms! < 1000, `accept_kernel_wait_ms: ${line.accept_kernel_wait_ms}`)
    assert.equal(line.read_kernel_wait_ms, undefined)
    assert.ok(line.stages.handler! >= 29, `30 ms in the handler: ${line.stages.handler}`)
    const m = await scrape(`http://127.0.0.1:${s.ports.metrics}/metrics`)
    const observed = sum(m, 'http_server_request_duration_seconds_sum', { http_route: '/compute' }) * 1000
    assert.ok(Math.abs(line.ms - observed) < 0.001, `the line's ${line.ms} ms is the histogram's ${observed} ms`)
    const fromRead = Object.entries(line.stages).filter(([k]) => k !== 'accept').reduce((n, [, v]) => n + v, 0)
    assert.ok(Math.abs(fromRead + line.hooks_ms - line.ms) < 0.005, `stages ${fromRead} + hooks ${line.hooks_ms} = ${line.ms} (each rounded to the µs)`)

    // A client that leaves while the handler runs: Fastify writes no line (its response never finishes);
    // the journey's record of the cut-off request is the line, once.
    await exec('curl', ['-s', '-m', '0.3', '-o', '/dev/null', `localhost:${s.ports.http}/io?ms=1000`]).catch(() => {})
    await new Promise(resolve => setTimeout(resolve, 300))
    const io = s.logs().split('\n').filter(l => l.includes('"msg":"request"') && l.includes('"route":"/io"')).map(l => JSON.parse(l) as { status: string, aborted_by?: string, ms: number, stages: Record<string, number>, path: string, reqId?: string })
    assert.equal(io.length, 1, s.logs())
    assert.equal(io[0]!.status, 'aborted')
    assert.equal(io[0]!.aborted_by, 'client', 'curl left: not the server\'s doing')
    assert.equal((io[0] as { sent_status?: number }).sent_status, undefined, 'no status had gone out')
    assert.equal(io[0]!.path, '/io', 'the path, as every request line has it, without the query')
    assert.match(io[0]!.reqId ?? '', /^req-/, 'and Fastify\'s request id, as on every other line about the request')
    assert.deepEqual(Object.keys(io[0]!.stages).at(-1), 'handler', 'cut off in the handler')
    assert.ok(io[0]!.ms >= 250 && io[0]!.ms < 900, `until the client left, ≈ 300 ms: ${io[0]!.ms}`)

    // A client that leaves mid-download (a streamed body): one line, the journey's. Fastify's own "stream
    // closed prematurely" line said status 200 for it, beside the journey's "aborted".
    await exec('curl', ['-s', '-m', '0.3', '--limit-rate', '100k', '-o', '/dev/null', `localhost:${s.ports.http}/download?kb=20000`]).catch(() => {})
    await new Promise(resolve => setTimeout(resolve, 300))
    const downloadId = (JSON.parse(s.logs().split('\n').find(l => l.includes('"route":"/download"'))!) as { reqId: string }).reqId
    const download = s.logs().split('\n').filter(l => l.includes(`"reqId":"${downloadId}"`))
    assert.equal(download.length, 1, download.join('\n'))
    assert.match(download[0]!, /"status":"aborted","aborted_by":"client","sent_status":200/, 'its 200 had gone out')

    // Answered by Node before any hook (no Host: 400), and input that never became a request, twice.
    const raw = async (text: string): Promise<string> => {
      const c = await connect(s.ports.http)
      await c.write(text)
      return await c.read() // until the server closes: each of these answers with Connection: close
    }
    // A 404's line names the route as the metrics do.
    await exec('curl', ['-s', '-o', '/dev/null', `localhost:${s.ports.http}/no-such-page`])
    assert.match(await raw('GET / HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400/)
    assert.match(await raw('NOT HTTP\r\n\r\n'), /^HTTP\/1\.1 400/)
    assert.match(await raw('NOT HTTP\r\n\r\n'), /^HTTP\/1\.1 400/)
    // A failed TLS handshake never reaches HTTP: curl, not trusting the development certificate, twice.
    for (let i = 0; i < 2; i++) await exec('curl', ['-s', '-o', '/dev/null', `https://localhost:${s.ports.https}/`]).catch(() => {})
    await new Promise(resolve => setTimeout(resolve, 200))
    const lines = s.logs().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
    assert.equal(lines.filter(l => l.msg === 'request' && l.route === '(unmatched)' && l.status === 400 && l.path === '/' && l.reqId === undefined).length, 1, 'Node\'s 400 has its request line (Fastify never saw it: no request id)')
    assert.equal(lines.filter(l => l.msg === 'request' && l.route === '(unmatched)' && l.status === 404 && l.path === '/no-such-page').length, 1, 'a 404\'s line')
    assert.equal(lines.filter(l => typeof l.msg === 'string' && l.msg.startsWith('client error') && l.code === 'HPE_INVALID_METHOD').length, 1, 'the malformed request line is said once; the second is summed up later')
    const handshakes = lines.filter(l => typeof l.msg === 'string' && l.msg.startsWith('TLS handshake failed'))
    assert.equal(handshakes.length, 1, 'the failed handshake is said once; the second is summed up later')
    assert.equal(handshakes[0]!.code, 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA')
    assert.equal(handshakes[0]!.reason, 'tlsv1_alert_unknown_ca', 'under the reason journey_tls_handshake_failures_total counts it')
    assert.equal(handshakes[0]!.listener, 'https')
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    assert.match(s.logs(), /"code":"HPE_INVALID_METHOD","count":1,"msg":"more of this code since the last line"/, 'the shutdown sums up what was pending')
    assert.match(s.logs(), /"code":"ERR_SSL_TLSV1_ALERT_UNKNOWN_CA","count":1,"msg":"more of this code since the last line"/)
  })

  // HTTP/2's spans end differently (write ends when the stream closes), so they are held against curl too.
  for (const http2 of [false, true]) test(`each request span fits inside what curl measured itself, and accounts for nearly all of it${http2 ? ' (HTTP/2)' : ''}`, async (t) => {
    const s = await start({ OTEL_TRACES_EXPORTER: 'none', ...(http2 ? { HTTPS_HTTP2: 'true' } : {}) })
    // New connections, one at a time: HTTPS with 20 ms in the handler, and GET / (plain; over HTTP/2, HTTPS).
    const urls = [
      ...Array.from({ length: 5 }, () => `https://localhost:${s.ports.https}/compute?ms=20`),
      ...Array.from({ length: 5 }, () => http2 ? `https://localhost:${s.ports.https}/` : `http://localhost:${s.ports.http}/`)
    ]
    // How long the server's main thread waited for a CPU while runnable (schedstat's second field, ns). A
    // span ends when Node runs the response's 'finish', just after its last write returns; on a busy machine
    // the kernel may first run other tasks (often curl, which that write woke), and that wait lands in write,
    // after curl already has the last byte (docs/stages.md). So a span may outlast curl's time by that wait
    // at most.
    const waitedMs = (): number => Number(readFileSync(`/proc/${s.child.pid}/task/${s.child.pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6
    // Over HTTP/2, Node's compatibility layer ends a response in two steps: the body's DATA frames, then,
    // after offering the app trailers, an empty DATA frame with END_STREAM; the stream closes (and write
    // ends) after that one (docs/stages.md). curl stops at Content-Length, before it: told to ignore
    // Content-Length, it reads to END_STREAM, the moment the span ends at. (Without it, 8 of 80 streams
    // here ended 0.2–1.9 ms after curl's last byte, with the server waiting for no CPU.)
    const untilEndStream = http2 ? ['--ignore-content-length'] : []
    // The host's steal from every CPU of this VM (/proc/stat, in 10 ms steps, so ±10): shown beside each request, not
    // allowed for — too coarse to subtract — so a span past curl's time can be read against it.
    const stolenMs = (): number => hostStealTicks() * 1000 / CLK_TCK
    // One round: the requests, then what is wrong with them (nothing: undefined).
    const round = async (r: number): Promise<string | undefined> => {
      const client: number[] = []
      const waited: number[] = []
      const stolen: number[] = []
      for (const url of urls) {
        const before = waitedMs()
        const stealBefore = stolenMs()
        const { stdout } = await exec('curl', ['-sk', http2 ? '--http2' : '--http1.1', ...untilEndStream, '-o', '/dev/null', '-w', '%{time_namelookup} %{time_total} %{http_version}', url])
        const [lookedUp, total, version] = stdout.split(' ').map(Number) as [number, number, number]
        assert.equal(version, http2 ? 2 : 1.1)
        // From curl starting to connect (name resolved) to its last byte read. Not from time_connect: on a
        // new process's first connection curl noted its connect up to 2 ms late (it tries ::1 for localhost
        // first), which made a server span look longer than the client's wait.
        client.push((total - lookedUp) * 1000)
        await new Promise(resolve => setTimeout(resolve, 20)) // the server has run 'finish' by now
        waited.push(waitedMs() - before)
        stolen.push(stolenMs() - stealBefore)
      }
      const snap = await (await request(`http://127.0.0.1:${s.ports.metrics}/journey/snapshot.json`)).body.json() as { recent: Array<{ route: string, durationMs: number }> }
      assert.equal(snap.recent.length, urls.length * (r + 1), 'one record per request')
      const server = snap.recent.slice(0, urls.length).reverse().map(r => r.durationMs) // oldest first, like `client`
      const slack = client.map((c, i) => c - server[i]!)
      const said = slack.map((d, i) => `${d.toFixed(2)}${waited[i]! >= 0.1 ? ` (waited ${waited[i]!.toFixed(2)})` : ''}${stolen[i]! > 0 ? ` (host steal ${stolen[i]}±10)` : ''}`).join(', ')
      t.diagnostic(`client minus server, ms (and the server's wait for a CPU): ${said}`)
      // The server's span (accept → last byte handed to the kernel) is inside the client's time: never
      // longer, give or take a timer's resolution and the time the server waited for a CPU; the rest is
      // curl's connect, send and receive. The wait this test reads is the guest's: when the VM's host takes
      // the CPU from the server's running thread (steal time, ≈ 3 % of this machine's day in /proc/stat, at
      // 10 ms resolution, none of it in the thread's schedstat), the span ends late by that, unseen — CI
      // runs read spans 1–9 ms past curl's last byte with the server waiting 0–3 ms, one or two requests in
      // ten on busy runs. So two of ten may be past; a span that is systematically too long is past in most.
      const past = slack.flatMap((d, i) => d > -1 - waited[i]! ? [] : [`request ${i}: server ${server[i]!.toFixed(2)} ms > client ${client[i]!.toFixed(2)} ms`])
      if (past.length > 2) return `${past.join('; ')}: more than the server waited for a CPU (client minus server, ms: ${said})`
      const median = slack.slice().sort((a, b) => a - b)[Math.floor(slack.length / 2)]!
      // Medians seen here: HTTP/1.1 0.6–0.8 ms, HTTP/2 1.4–1.8 (curl's side of an HTTP/2 connection costs it
      // ≈ 0.8 ms more; not located further). In this VM's slow phases both have read 4 times that (2.3 and 4.0
      // in one CI run), so each bound is about four times its usual median: a missing stage still fails it.
      // On a machine busy with other work (CI runs test files side by side on two cores) curl waits for a CPU
      // too, and that wait is in its time, not the server's: one CI run read a median of 3.57 ms with the server
      // waiting 12 ms for a CPU per request (median) and up to 51. curl's own wait cannot be read once it has
      // exited, so the server's median wait stands for how busy the machine was: the bound grows by it, and on
      // a quiet machine (waits ≈ 0) stays what it was.
      const busy = waited.slice().sort((a, b) => a - b)[Math.floor(waited.length / 2)]!
      const bound = (http2 ? 6 : 3) + busy
      if (!(median < bound)) return `the server's spans leave ${median.toFixed(2)} ms of the client's time unexplained (median; bound ${bound.toFixed(2)} with the server's median wait for a CPU): ${said}`
      return undefined
    }
    // Up to three rounds: a busy moment (above) passes on a calm round; a stage counted wrong is in every
    // round, and three wrong ones fail with what each said.
    const wrong: string[] = []
    for (let r = 0; r < 3; r++) {
      const problem = await round(r)
      if (problem === undefined) break
      wrong.push(problem)
      assert.ok(wrong.length < 3, `three rounds, each wrong:\n${wrong.join('\n')}`)
    }
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
  })

  test('a request its head sampler passed over but kept at its end (slow) names its trace on its log line, as a head-sampled one does', async () => {
    const s = await start({ LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'console', OTEL_TRACES_SAMPLER: 'always_off', JOURNEY_SLOW_MS: '50' })
    await exec('curl', ['-s', '-o', '/dev/null', `localhost:${s.ports.http}/compute?ms=80`])
    await exec('curl', ['-s', '-o', '/dev/null', `localhost:${s.ports.http}/compute?ms=1`])
    await new Promise(resolve => setTimeout(resolve, 100))
    type Line = { ms: number, trace_id?: string, span_id?: string }
    const lines = s.logs().split('\n').filter(l => l.includes('"msg":"request"') && l.includes('"route":"/compute"'))
    assert.equal(lines.length, 2, s.logs())
    const [slow, fast] = lines.map(l => JSON.parse(l) as Line)
    assert.match(slow!.trace_id ?? '', /^[0-9a-f]{32}$/, `the slow request's line: ${lines[0]}`)
    assert.match(slow!.span_id ?? '', /^[0-9a-f]{16}$/)
    assert.equal(lines[0]!.split('"trace_id"').length, 2, 'once')
    assert.equal(fast!.trace_id, undefined, 'a request nobody kept has no trace to name')
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    // The console exporter prints what it exports at the shutdown flush: that request span is the line's.
    assert.match(s.logs(), new RegExp(`traceId: '${slow!.trace_id}'[\\s\\S]*?id: '${slow!.span_id}'`), 'the trace the line names was exported')
  })

  test('a second signal exits at once, without waiting for in-flight requests', async () => {
    const s = await start({ SHUTDOWN_TIMEOUT_MS: '30000' })
    const slow = request(`http://127.0.0.1:${s.ports.http}/io?ms=5000`).then(r => r.body.text()).catch(() => 'cut')
    await new Promise(resolve => setTimeout(resolve, 100))
    const started = performance.now()
    s.child.kill('SIGTERM')
    await new Promise(resolve => setTimeout(resolve, 200))
    s.child.kill('SIGTERM')
    const { code } = await s.exited
    assert.equal(code, 1)
    assert.ok(performance.now() - started < 3000, 'did not wait for the 5 s request')
    assert.match(s.logs(), /second signal: exiting now/)
    await slow
  })

  test('Ctrl-C with the journey page open in a browser: its live stream ends and the process exits 0 at once', async () => {
    const s = await start({ SHUTDOWN_TIMEOUT_MS: '10000' })
    const page = await request(`http://127.0.0.1:${s.ports.metrics}/journey/events`)
    const ended = new Promise<void>(resolve => page.body.on('data', () => {}).once('end', () => resolve()))
    await new Promise(resolve => setTimeout(resolve, 1200)) // a frame or two
    const started = performance.now()
    s.child.kill('SIGTERM')
    const { code } = await s.exited
    await ended
    assert.equal(code, 0)
    // Before, the admin server waited for the page's endless stream: still running 20 s after the signal.
    assert.ok(performance.now() - started < 3000, `exited ${(performance.now() - started).toFixed(0)} ms after the signal`)
  })

  // Node 24's closeIdleConnections() leaves a connection that has sent nothing open (nodejs/node#63452): one
  // browser preconnect held every shutdown for its whole deadline (10 s), and logged it as reached.
  test('shutdown closes connections that have sent nothing (preconnects) at once, and lets a request begun on another finish', async () => {
    const s = await start({ SHUTDOWN_TIMEOUT_MS: '10000', LOG_LEVEL: 'info' })
    const silent = [await connect(s.ports.http), await connect(s.ports.https, true)]
    // The admin listener's too (a scraper's), closed once the public ones have drained; it has no deadline,
    // and before, one kept the process for ever.
    const silentAdmin = await connect(s.ports.metrics)
    const begun = await connect(s.ports.http)
    await begun.write('GET / HTTP/1.1\r\nHo')
    // Its handler running at the signal; and a download whose headers went out before it (said keep-alive).
    const running = await connect(s.ports.http)
    await running.write('GET /io?ms=300 HTTP/1.1\r\nHost: localhost\r\n\r\n')
    const sending = await connect(s.ports.http)
    sending.socket.pause()
    await sending.write('GET /download?kb=32768 HTTP/1.1\r\nHost: localhost\r\n\r\n')
    await new Promise(resolve => setTimeout(resolve, 200)) // accepted, and the first bytes read
    const started = performance.now()
    s.child.kill('SIGTERM')
    for (const c of silent) assert.equal(await c.read(), '', 'closed by the server, with nothing sent')
    await begun.write('st: localhost\r\n\r\n')
    for (const [c, what] of [[begun, 'a request begun before the signal'], [running, 'a request running at the signal']] as const) {
      const answer = await c.read(text => text.includes('\r\n\r\n') && text.endsWith('}'))
      assert.match(answer, /^HTTP\/1\.1 200 /, what)
      assert.match(answer, /\r\nconnection: close\r\n/i, `${what}: told its connection ends`)
      assert.equal(await c.read(), '', `${what}: then closed`)
    }
    sending.socket.resume()
    const download = await sending.read()
    assert.match(download, /^HTTP\/1\.1 200 [\s\S]*\r\nconnection: keep-alive\r\n/i, 'the download\'s headers went out before the signal')
    // Once seen 45 KB short in a fresh-clone CI run (2026-12-07): Node's idle sweep had taken the ended download
    // for idle (src/connections.ts, stopAccepting). Should it be short again, the message says what cut it.
    const downloadLine = s.logs().split('\n').find(l => l.includes('"path":"/download"')) ?? '(no log line for it)'
    assert.ok(sending.received() > 32768 * 1024, `all of it, then closed (${sending.received()} bytes; the client's socket error: ${sending.error()?.message ?? 'none'}; the server's line: ${downloadLine}; exited: ${JSON.stringify(await Promise.race([s.exited, new Promise(resolve => setTimeout(resolve, 1000, 'not within 1 s'))]))})`)
    assert.equal(await silentAdmin.read(), '', 'the admin listener\'s silent connection: closed')
    assert.equal((await s.exited).code, 0)
    const took = performance.now() - started
    assert.ok(took < 3000, `exited ${took.toFixed(0)} ms after the signal, not at the 10 s deadline`)
    assert.doesNotMatch(s.logs(), /shutdown deadline reached/)
  })

  // Node's server.close() and closeIdleConnections() take a connection for idle once its response has ended,
  // not once it is written: a large body ended in one piece, still going out to a client that reads slowly,
  // was destroyed at the signal with what the kernel did not hold yet (3.9 of 12.6 MB arrived).
  test('shutdown lets a large response still being written to a slow reader arrive whole, over HTTP and HTTPS', async () => {
    const s = await start({ SHUTDOWN_TIMEOUT_MS: '10000' })
    const clients = [await connect(s.ports.http), await connect(s.ports.https, true)]
    for (const c of clients) {
      c.socket.pause() // not reading: the kernel's buffers fill, and the rest of the body waits in the server
      await c.write('GET /report?items=100000 HTTP/1.1\r\nHost: localhost\r\n\r\n')
    }
    await new Promise(resolve => setTimeout(resolve, 1000)) // serialized (≈ 12 MB of JSON) and ended
    s.child.kill('SIGTERM')
    await new Promise(resolve => setTimeout(resolve, 300))
    for (const [i, c] of clients.entries()) {
      c.socket.resume()
      const text = await c.read(undefined, 20_000)
      const head = text.slice(0, text.indexOf('\r\n\r\n'))
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1])
      assert.ok(length > 10_000_000, head)
      assert.equal(c.received() - head.length - 4, length, `${i === 0 ? 'HTTP' : 'HTTPS'}: the whole body (the client's socket error: ${c.error()?.message ?? 'none'})`)
    }
    assert.equal((await s.exited).code, 0)
  })

  test('HTTPS_HTTP2: shutdown closes an HTTP/2 connection that sent nothing at once, and one whose client ignores GOAWAY at the deadline', async () => {
    const s = await start({ HTTPS_HTTP2: 'true', SHUTDOWN_TIMEOUT_MS: '1000', LOG_LEVEL: 'info' })
    const open = async (allowHalfOpen: boolean): Promise<TLSSocket> => await new Promise((resolve, reject) => {
      // allowHalfOpen: a client that does not close its side when the server ends the connection.
      const c = tlsConnect({ port: s.ports.https, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2'], allowHalfOpen } as ConnectionOptions, () => resolve(c))
      c.on('error', reject)
    })
    const silent = await open(false)
    silent.resume() // reading, so it sees the server close it
    const stubborn = await open(true)
    // The client preface and an empty SETTINGS frame; then nothing, and it never closes.
    stubborn.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]))
    let goaway = false
    stubborn.on('data', (d: Buffer) => { if (d.includes(Buffer.from([0x07]))) goaway = true })
    await new Promise(resolve => setTimeout(resolve, 200))
    const closed = (c: TLSSocket): Promise<number> => new Promise(resolve => c.once('close', () => resolve(performance.now())))
    const silentClosed = closed(silent)
    const started = performance.now()
    s.child.kill('SIGTERM')
    const exited = await Promise.race([s.exited, new Promise<'hung'>(resolve => setTimeout(resolve, 8000, 'hung').unref())])
    assert.notEqual(exited, 'hung', 'the process exits (before, an HTTP/2 client that never closed kept it alive for ever)')
    assert.equal((exited as { code: number }).code, 0)
    assert.ok(await silentClosed - started < 500, 'the connection that sent nothing was closed at once')
    assert.ok(goaway, 'the stubborn client was told to go away')
    assert.match(s.logs(), /shutdown deadline reached/, 'and was closed at the deadline')
    stubborn.destroy()
  })

  test('new connections are refused once shutdown starts', async () => {
    const s = await start({ SHUTDOWN_TIMEOUT_MS: '2000' })
    const slow = request(`http://127.0.0.1:${s.ports.http}/io?ms=600`).then(r => r.body.text())
    await new Promise(resolve => setTimeout(resolve, 100))
    s.child.kill('SIGTERM')
    await new Promise(resolve => setTimeout(resolve, 100))
    await assert.rejects(exec('curl', ['-s', '--max-time', '2', `http://127.0.0.1:${s.ports.http}/`]))
    await slow
    assert.equal((await s.exited).code, 0)
  })

  for (const thread of ['main', 'worker']) test(`spans leave the process by OTLP/HTTP, and are flushed on shutdown (sent from the ${thread} thread)`, async () => {
    const posts: Array<{ url: string, body: any }> = []
    const receiver = createServer((req: IncomingMessage, res) => {
      let body = ''
      req.on('data', (d: Buffer) => { body += d.toString() })
      req.on('end', () => {
        posts.push({ url: req.url ?? '', body: JSON.parse(body) })
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      })
    })
    await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve))
    after(() => { receiver.close() })
    const port = (receiver.address() as AddressInfo).port
    const s = await start({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'journey-under-test',
      JOURNEY_EXPORT_THREAD: thread,
      // Long enough that only the shutdown flush can deliver them.
      OTEL_BSP_SCHEDULE_DELAY: '60000'
    })
    // The start-up line says where spans go, as chosen (the worker thread started with the exporter).
    assert.match(s.logs(), new RegExp(`"spans":"OTLP to http://127\\.0\\.0\\.1:${port}/v1/traces \\(http/json\\), sent from the ${thread === 'main' ? 'serving' : 'export worker'} thread"`))
    await (await request(`http://127.0.0.1:${s.ports.http}/compute?ms=5`)).body.text()
    const metrics = await (await request(`http://127.0.0.1:${s.ports.metrics}/metrics`)).body.text()
    const instance = /^target_info\{service_name="journey-under-test",service_instance_id="([^"]+)",host_name="[^"]+"\} 1$/m.exec(metrics)?.[1]
    assert.ok(instance, 'target_info names this process')
    assert.equal(posts.length, 0)
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    receiver.close()
    assert.ok(posts.length > 0, 'the exporter posted')
    assert.equal(posts[0]!.url, '/v1/traces')
    const resourceSpans = posts.flatMap(p => p.body.resourceSpans)
    const service = resourceSpans[0].resource.attributes.find((a: any) => a.key === 'service.name').value.stringValue
    assert.equal(service, 'journey-under-test')
    const attr = (k: string): unknown => resourceSpans[0].resource.attributes.find((a: any) => a.key === k)?.value.stringValue
    assert.equal(attr('service.instance.id'), instance, 'spans and target_info carry the same instance id')
    assert.ok(attr('host.name'))
    // What the specification requires of every SDK's resource (backends read the language from it).
    assert.equal(attr('telemetry.sdk.name'), 'opentelemetry')
    assert.equal(attr('telemetry.sdk.language'), 'nodejs')
    assert.match(String(attr('telemetry.sdk.version')), /^\d+\.\d+\.\d+/)
    const names = resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((ss: any) => ss.spans.map((sp: any) => sp.name)))
    for (const n of ['GET /compute', 'journey.accept', 'journey.read', 'journey.parse', 'journey.decode', 'journey.handler', 'journey.serialize', 'journey.write']) {
      assert.ok(names.includes(n), `${n} exported; got ${names}`)
    }
  })

  test('without a protocol set, spans go as OTLP protobuf (the specification\'s default, and the cheaper encoding)', async () => {
    const posts: Array<{ type: string | undefined, body: Buffer }> = []
    const receiver = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = []
      req.on('data', (d: Buffer) => chunks.push(d))
      req.on('end', () => {
        posts.push({ type: req.headers['content-type'], body: Buffer.concat(chunks) })
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
      })
    })
    await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve))
    after(() => { receiver.close() })
    const s = await start({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
      OTEL_BSP_SCHEDULE_DELAY: '60000'
    })
    await (await request(`http://127.0.0.1:${s.ports.http}/compute?ms=5`)).body.text()
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    receiver.close()
    assert.ok(posts.length > 0, 'the exporter posted')
    assert.equal(posts[0]!.type, 'application/x-protobuf')
    const body = Buffer.concat(posts.map(p => p.body))
    assert.notEqual(body[0], '{'.charCodeAt(0), 'not JSON')
    // Protobuf strings are plain UTF-8 in the message: every stage span's name is in there.
    for (const n of ['GET /compute', 'journey.accept', 'journey.read', 'journey.handler', 'journey.write']) {
      assert.ok(body.includes(n), `${n} exported`)
    }
    assert.equal(s.logs().split('\n').filter(l => l.includes('"level":50') || l.includes('"level":40')).length, 0, 'no warnings: the receiver\'s answer was understood')
  })

  test('OTEL_PROPAGATORS=b3: a request carrying a B3 header continues its trace', async () => {
    // Only what the client's context says is sampled: proves the header was read.
    const { s, receiver } = await startTraced({ OTEL_PROPAGATORS: 'b3', OTEL_TRACES_SAMPLER: 'parentbased_always_off' })
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    await (await request(`http://127.0.0.1:${s.ports.http}/`, { headers: { b3: `${traceId}-00f067aa0ba902b7-1` } })).body.text()
    await (await request(`http://127.0.0.1:${s.ports.http}/`)).body.text()
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    const traces = receiver.all().filter(sp => sp.name === 'GET /').map(sp => sp.traceId)
    assert.deepEqual(traces, [traceId], 'the B3 request\'s trace, and nothing for the request without one')
  })

  // Request spans after the first are built without the SDK (finishedRequestSpans), which would not apply
  // span limits to them: with a limit set, every one must still go through the SDK and be truncated.
  for (const limit of [undefined, '4']) test(`request spans carry ${limit === undefined ? 'their full attributes, the first (through the SDK) and the rest (built finished) alike' : 'OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, every one of them'}`, async () => {
    const { s, receiver } = await startTraced(limit === undefined ? {} : { OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: limit })
    for (let i = 0; i < 3; i++) await (await request(`http://127.0.0.1:${s.ports.http}/compute?ms=1`)).body.text()
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    const spans = receiver.all().filter(sp => sp.name === 'GET /compute')
    assert.deepEqual(spans.map(sp => sp.attributes['http.route']), Array(3).fill(limit === undefined ? '/compute' : '/com'))
    assert.deepEqual(spans.map(sp => sp.attributes['http.request.method']), ['GET', 'GET', 'GET'])
  })

  test('OTEL_TRACES_EXPORTER=otlp,console: the server starts, and both exporters get the spans', async () => {
    // Two counted pipelines registered the same metrics twice, and the server stopped at start-up.
    const { s, receiver } = await startTraced({ OTEL_TRACES_EXPORTER: 'otlp,console', OTEL_TRACES_SAMPLER: 'always_on' })
    assert.equal((await request(`http://127.0.0.1:${s.ports.http}/`)).statusCode, 200)
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    const sent = receiver.all().filter(sp => sp.name === 'GET /')
    assert.equal(sent.length, 1, 'the OTLP exporter delivered the request span')
    assert.ok(s.logs().includes(sent[0]!.traceId), 'the console exporter printed the same trace')
    // A traced request's log line carries the wait before read its read span has (the addon; CI has it).
    if (tcpInfoUnavailable === undefined) {
      const read = receiver.all().find(sp => sp.name === 'journey.read' && sp.traceId === sent[0]!.traceId)!
      const line = s.logs().split('\n').filter(l => l.includes('"msg":"request"')).map(l => JSON.parse(l) as { read_kernel_wait_ms?: number }).at(-1)!
      assert.equal(typeof read.attributes['journey.read.kernel_wait_ms'], 'number')
      assert.equal(line.read_kernel_wait_ms, read.attributes['journey.read.kernel_wait_ms'], 'the log line\'s read_kernel_wait_ms is the span\'s')
    }
  })

  test('SIGTERM under load: every in-flight request completes and its spans reach the collector before exit', async () => {
    const { s, receiver } = await startTraced()
    // Connections first, so that at SIGTERM every request is in flight on one, not still connecting
    // (a connection with no request yet is idle, and shutdown rightly closes idle connections).
    const pool = new Pool(`http://127.0.0.1:${s.ports.http}`, { connections: 50 })
    await Promise.all(Array.from({ length: 50 }, async () => (await pool.request({ method: 'GET', path: '/io?ms=50' })).body.dump()))
    const inflight = Array.from({ length: 50 }, (_, i) =>
      pool.request({ method: 'GET', path: `/io?ms=${800 + i}` }).then(async r => { await r.body.text(); return r.statusCode }))
    await new Promise(resolve => setTimeout(resolve, 300))
    s.child.kill('SIGTERM')
    const statuses = await Promise.all(inflight)
    await pool.close()
    assert.deepEqual(statuses, Array(50).fill(200))
    assert.equal((await s.exited).code, 0)
    const traces = new Set(receiver.all().filter(sp => sp.name === 'GET /io').map(sp => sp.traceId))
    assert.equal(traces.size, 100, 'one exported request span per completed request (50 warm-up + 50 in flight)')
  })

  for (const thread of ['main', 'worker']) test(`spans still queued at shutdown with no collector: one line says they were not delivered, and the exit is clean (${thread} thread)`, async () => {
    const s = await start({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
      OTEL_EXPORTER_OTLP_TIMEOUT: '500',
      // Only the shutdown flush tries to send them.
      OTEL_BSP_SCHEDULE_DELAY: '60000',
      JOURNEY_EXPORT_THREAD: thread
    })
    await (await request(`http://127.0.0.1:${s.ports.http}/`)).body.text()
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    const lines = s.logs().split('\n').filter(l => l.includes('telemetry flush at shutdown'))
    assert.equal(lines.length, 1, `one line about the lost spans, got: ${s.logs()}`)
    assert.match(lines[0]!, /"level":40/)
  })

  test('a collector that never answers: the shutdown flush gives up at its deadline, says so once, and the exit is clean', async () => {
    const s = await start({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: await collectorThatNeverAnswers(),
      OTEL_BSP_SCHEDULE_DELAY: '60000'
    })
    await (await request(`http://127.0.0.1:${s.ports.http}/`)).body.text()
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    const lines = s.logs().split('\n').filter(l => l.includes('telemetry flush at shutdown'))
    assert.equal(lines.length, 1, `one line about the lost spans, got: ${s.logs()}`)
    assert.match(lines[0]!, /did not finish in time/)
  })

  for (const thread of ['main', 'worker']) test(`with no collector running, serving is unaffected and the log stays quiet (sent from the ${thread} thread)`, async () => {
    const s = await start({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_BSP_SCHEDULE_DELAY: '50', JOURNEY_EXPORT_THREAD: thread })
    for (let i = 0; i < 50; i++) {
      const r = await request(`http://127.0.0.1:${s.ports.http}/`)
      assert.equal(r.statusCode, 200)
      await r.body.text()
    }
    await new Promise(resolve => setTimeout(resolve, 500))
    s.child.kill('SIGTERM')
    assert.equal((await s.exited).code, 0)
    assert.equal(s.logs().split('\n').filter(l => l.includes('"level":50')).length, 0, 'no errors logged')
    const warnings = s.logs().split('\n').filter(l => l.includes('telemetry export failed'))
    assert.ok(warnings.length <= 1, `at most one export warning a minute, got ${warnings.length}`)
  })
})
