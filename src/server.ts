// The HTTP, HTTPS and admin listeners; wires the journey instrumentation and the demo app together.
import { createServer as createHttpServer, STATUS_CODES, type Server as HttpServer, type ServerOptions } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2'
import type { AddressInfo, Server as NetServer, Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { createAdmin } from './admin.ts'
import { Gauge } from 'prom-client'
import { ConfigError, type Config } from './config.ts'
import type { Telemetry } from './telemetry.ts'
import { channels, createJourney, exposition, sessionErrorReason, summarize, tlsFailureReason, urlPath, type Journey, type JourneySummary, type RequestRecord } from './journey/index.ts'
import { demoApp } from './app/index.ts'
import { announceGenerated, loadTlsMaterial, type TlsMaterial } from './tls-cert.ts'
import { ClientErrorLog } from './client-error-log.ts'
import { stopAccepting, trackConnections, type Connections } from './connections.ts'

export interface RunningServer {
  app: FastifyInstance
  /** The admin listener (/metrics, /healthz, /readyz, /journey); a cluster's primary serves it instead of workers. */
  admin: FastifyInstance | undefined
  http: HttpServer
  /** HTTPS: HTTP/1.1 only, or with HTTPS_HTTP2 an HTTP/2 server that lets HTTP/1.1 clients in. */
  https: HttpsServer | Http2SecureServer
  journey: Journey
  ports: { http: number, https: number, metrics: number }
  /**
   * Graceful: stop accepting, let in-flight requests finish (up to the deadline), close keep-alive sockets.
   * `drained` runs then, before the journey closes and takes its metrics out of the registry (the last metrics push).
   */
  close: (drained?: () => Promise<void>) => Promise<void>
}

/** Fastify's default answer to a malformed request, applied to both listeners (Fastify only sees one). */
function clientErrorHandler (this: { errors: ClientErrorLog, listener: string }, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
  const body = JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message: err.code ?? 'Client Error' })
  this.errors.note(err, this.listener)
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

/**
 * MAX_CONNECTIONS: past `max` open connections a listener's Node closes each new one as soon as it accepts
 * it, unserved (counted by the journey: journey_connections_dropped_total). Set on the servers that listen
 * (in fine mode the TLS one listens through its cipher tap). In the cluster-rr strategy, without
 * `dropMaxConnection`, a full worker hands the connection back to the primary, which offers it to the next
 * one: with every worker full they passed it round, three processes busy, while the client hung (tried
 * here). With it every strategy drops alike, and the limit means the same everywhere.
 */
function limitConnections (listeners: Record<string, NetServer>, max: number, errors: ClientErrorLog): void {
  for (const [listener, server] of Object.entries(listeners)) {
    server.maxConnections = max
    // Not in @types/node yet (Node 23 added it; Node 24 has it).
    ;(server as NetServer & { dropMaxConnection?: boolean }).dropMaxConnection = true
    server.on('drop', () => { errors.dropped(listener, max) })
  }
}

// Records whose line Fastify's log controller wrote, so the cut-off logger below never writes a second one.
const logged = new WeakSet<RequestRecord>()

/** What a request's log line says of its journey: the same numbers its span and histograms have. */
function journeyFields (j: JourneySummary): Record<string, unknown> {
  return {
    ms: j.ms,
    stages: j.stages,
    hooks_ms: j.hooksMs,
    ...(j.pipelinedMs > 0 ? { pipelined_ms: j.pipelinedMs } : {}),
    ...(j.errorHandlerMs > 0 ? { error_handler_ms: j.errorHandlerMs } : {}),
    ...(j.bodyReceivedMs === undefined ? {} : { body_received_ms: j.bodyReceivedMs }),
    ...(j.bodyParsedMs === undefined ? {} : { body_parsed_ms: j.bodyParsedMs }),
    ...(j.handlerSyncMs === undefined ? {} : { handler_sync_ms: j.handlerSyncMs }),
    ...(j.acceptKernelWaitMs === undefined ? {} : { accept_kernel_wait_ms: j.acceptKernelWaitMs }),
    ...(j.readKernelWaitMs === undefined ? {} : { read_kernel_wait_ms: j.readKernelWaitMs })
  }
}

/** One line per request, written when it completes, with the path but not the query (queries may carry secrets). */
class RequestLogLine extends LogController {
  override incomingRequest (): void {}
  override requestCompleted (error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    // Node finishes the journey's record before Fastify calls this (both on the response's 'finish'), so
    // the line carries the same numbers as the request's span and histograms: `ms` is the request duration
    // the dashboards show, and each stage is there. Without the journey, Fastify's own elapsed time.
    // (`== null`: with JOURNEY_ENABLED=false the plugin never decorated the request, so it is undefined.)
    const rec = request.journey as RequestRecord | null | undefined
    // Cut off: the journey's line for it (logCutOff) came first. On HTTP/2 Node's compatibility layer emits
    // 'finish' when a stream closes, answered or not, so Fastify calls this for a stream cut off in its
    // handler too, and this line said status 200 for a response never sent.
    if (rec?.aborted === true) return
    if (rec != null) logged.add(rec)
    const journey = rec == null ? undefined : summarize(rec)
    const line = {
      // A request kept at its end (slow, failed) got its trace then, after its logger was made with the trace of
      // a head-sampled one (onRequest, below): its line names it, so the line leads to the waterfall.
      ...(rec != null && rec.keptBy !== undefined && !rec.sampled && rec.traceId !== undefined ? { trace_id: rec.traceId, span_id: rec.spanId } : {}),
      method: request.method,
      path: urlPath(request.url) ?? request.url,
      // The journey's route label: `(unmatched)` for a 404, as in the metrics, so a line can be found from a panel.
      route: rec != null ? rec.route : request.routeOptions.url,
      status: reply.statusCode,
      ...(journey === undefined ? { ms: Math.round(reply.elapsedTime * 1000) / 1000 } : journeyFields(journey))
    }
    if (error != null && reply.statusCode >= 500) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.info(line, 'request')
  }

  // A streamed body its client stopped taking (a download cut off): the journey's line for the request says
  // aborted, by whom, and where its time went; Fastify's own said "stream closed prematurely" with status 200.
  override streamError (error: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error.code === 'ERR_STREAM_PREMATURE_CLOSE' && (request.journey as RequestRecord | null | undefined)?.aborted === true) return
    super.streamError(error, request, reply, metadata)
  }
}

/** "Address in use" (or not allowed, or not here) as a configuration error that names the variable. */
export function listenError (err: NodeJS.ErrnoException, variable: string, port: number, host: string): Error {
  return err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
    ? new ConfigError(`${variable}=${port} cannot be used on ${host}: ${err.code}`)
    : err
}

/** Listens, turning "address in use" into a configuration error that names the variable. */
function listen (server: NetServer, port: number, host: string, variable: string, reusePort = false, backlog?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => { reject(listenError(err, variable, port, host)) }
    server.once('error', onError)
    // reusePort: this process binds its own socket (SO_REUSEPORT) with its own accept queue; `exclusive`
    // keeps a cluster worker from asking the primary for a shared handle instead.
    server.listen({ port, host, backlog, ...(reusePort ? { reusePort: true, exclusive: true } : {}) }, () => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

/**
 * Stops `listener` accepting and resolves once its connections are gone; `http` is the HTTP server behind it.
 * `sessions`: its HTTP/2 sessions, each told to finish its running streams and take no more (GOAWAY).
 * `connections`: its connections (trackConnections): those that have sent nothing yet are closed, and idle ones
 * only while none is still writing a response.
 */
function closeServer (listener: NetServer, http: { closeIdleConnections?: () => void } = listener as HttpServer, sessions?: Set<ServerHttp2Session>, connections?: Connections): Promise<void> {
  return new Promise(resolve => {
    if (!listener.listening) { resolve(); return }
    // Idle keep-alive sockets close now; busy ones get `Connection: close` on their next response (the
    // onSend hook below). One whose response had already said keep-alive is idle once that is sent: swept
    // then, not left until KEEP_ALIVE_TIMEOUT_MS. (An HTTP/2 server has closeIdleConnections for the
    // HTTP/1.1 clients it lets in, though its types do not say so.) Never while a response is still being
    // written: Node takes an ended one for idle and destroys it (connections.ts, stopAccepting).
    const closeIdle = (): void => { if (connections?.flushing() !== true) http.closeIdleConnections?.() }
    const sweep = setInterval(closeIdle, 100)
    stopAccepting(listener, () => { clearInterval(sweep); resolve() })
    closeIdle()
    connections?.closeSilent()
    // Node 24's server.close() sends every HTTP/2 session a GOAWAY itself (checked: idle and busy alike);
    // Node 22's, which the engines field allows, does not.
    for (const session of sessions ?? []) session.close()
  })
}

/**
 * A single process serves everything; a cluster worker serves HTTP(S), with the TLS material its primary
 * loaded (or generated) once for all workers, while the primary serves admin (cluster.ts).
 */
export type ServerRole = { kind: 'single' } | { kind: 'worker', id: number, tls: TlsMaterial }

export async function startServer (config: Config, telemetry: Telemetry, log: Logger, role: ServerRole = { kind: 'single' }): Promise<RunningServer> {
  const tls = role.kind === 'worker' ? role.tls : await loadTlsMaterial(config.tlsCert, config.tlsKey)
  if (role.kind === 'single') announceGenerated(log, tls) // a cluster's primary said it, for all its workers
  // Read once: the certificate is loaded once per process (a new one takes a restart), so the gauge is exact.
  new Gauge({
    name: 'journey_tls_certificate_expiry_timestamp_seconds',
    help: 'When the certificate the HTTPS listener serves expires (its notAfter), in Unix seconds: the JourneyTlsCertificateExpiresSoon alert reads it.',
    labelNames: ['listener'] as const,
    registers: [telemetry.registry]
  }).set({ listener: 'https' }, tls.notAfter.getTime() / 1000)

  const journey = createJourney({
    registry: telemetry.registry,
    tracing: telemetry.tracing,
    precision: config.precision,
    slowThresholdMs: config.slowThresholdMs,
    keepErrors: config.keepErrors,
    keepLimitPerSecond: config.keepLimitPerSecond,
    recordExceptions: config.recordExceptions,
    serverTiming: config.serverTiming,
    recordHeaders: config.recordHeaders,
    recordResponseHeaders: config.recordResponseHeaders,
    kernelSampleMs: config.kernelSampleMs
  })
  if (journey.limitation !== undefined) log.warn(journey.limitation)
  // Fastify writes a request's line when its response finishes, so two kinds of request got none: those cut
  // off first (the client left, or this server closed the connection), and those answered before any hook
  // (Node's 400 for a missing Host, 417, Fastify's 400 for a malformed URL). Their journey records still
  // come: those are their lines.
  const logCutOff = (message: unknown): void => {
    const rec = message as RequestRecord
    if (!(rec.aborted || rec.beforeHooks) || logged.has(rec)) return
    const j = summarize(rec) // a published record is finished: always there
    log.info({
      // Fastify's request id, as on its own lines about the request (none before its hooks).
      ...(rec.request !== undefined ? { reqId: rec.request.id } : {}),
      ...(rec.keptBy !== undefined && rec.traceId !== undefined ? { trace_id: rec.traceId, span_id: rec.spanId } : {}),
      method: rec.method,
      path: urlPath(rec.target) ?? rec.target,
      route: rec.route,
      status: rec.aborted ? 'aborted' : rec.status,
      // Who cut it off: the client leaving, or this server (a socket timeout, the shutdown deadline); and the
      // status that had gone out before, if one had (a download cut off after its 200), as span and metric say.
      ...(rec.abortedBy !== undefined ? { aborted_by: rec.abortedBy } : {}),
      ...(rec.aborted && rec.status > 0 ? { sent_status: rec.status } : {}),
      ...(j === undefined ? {} : journeyFields(j))
    }, 'request')
  }
  if (config.journeyEnabled && log.isLevelEnabled('info')) channels.request.subscribe(logCutOff)
  if (journey.kernelLimitation !== undefined) log.info(journey.kernelLimitation)

  // Fastify applies its timeout options only to servers it creates; these are ours, so set them here.
  const limits: ServerOptions = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    maxHeaderSize: config.maxHeaderSize,
    connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs)
  }
  let httpsServer: HttpsServer | Http2SecureServer | undefined
  // HTTPS_HTTP2: the sessions to close at shutdown (an HTTP/2 server has no closeAllConnections()).
  const sessions = new Set<ServerHttp2Session>()
  let connections: { http: Connections, https: Connections } | undefined
  const clientErrors = new ClientErrorLog(log)
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new RequestLogLine(),
    bodyLimit: config.bodyLimitBytes,
    // Bound here: Fastify binds it to itself, and a bound function keeps its first `this`.
    clientErrorHandler: clientErrorHandler.bind({ errors: clientErrors, listener: 'http' }),
    // /echo's items are scalars of any JSON type: a type list, which Ajv's strict mode otherwise warns about.
    ajv: { customOptions: { allowUnionTypes: true } },
    serverFactory: (handler) => {
      // JOURNEY_ENABLED=false serves the same app unobserved: the baseline for what the journey costs.
      const observe = <S extends HttpServer | Http2SecureServer>(server: S, name: string): S => config.journeyEnabled ? journey.observeServer(server, name) : server
      const http = observe(createHttpServer(limits, handler), 'http')
      const secure = { ...limits, key: tls.key, cert: tls.cert, ticketKeys: tls.ticketKeys, handshakeTimeout: config.tlsHandshakeTimeoutMs }
      if (config.httpsHttp2) {
        // Fastify answers HTTP/2 and HTTP/1.1 requests alike (it tells them apart per request); the HTTP/1
        // limits above apply to the HTTP/1.1 clients this server lets in.
        const h2 = createSecureServer({ ...secure, allowHTTP1: true }, handler as unknown as Parameters<typeof createSecureServer>[1])
        h2.on('session', (session: ServerHttp2Session) => { sessions.add(session); session.once('close', () => sessions.delete(session)) })
        // Node's HTTP/1 server turns Nagle's algorithm off on its sockets; the HTTP/1.1 clients an HTTP/2
        // server lets in keep it on, and small pipelined responses then waited ≈ 40 ms in the kernel for
        // the client's delayed ACK (the http2 experiment; the server's write stage cannot see that wait).
        h2.on('secureConnection', (socket: TLSSocket) => { socket.setNoDelay(true) })
        // An HTTP/2 client's protocol error (a malformed frame, an oversized header block) closes its session
        // without any request: logged like the HTTP/1.1 parser's errors, so it is not only a count.
        h2.on('sessionError', (err: NodeJS.ErrnoException) => {
          const reason = sessionErrorReason(err)
          if (reason !== 'client_reset') clientErrors.note(err, 'https', reason)
        })
        httpsServer = observe(h2, 'https')
      } else {
        httpsServer = observe(createHttpsServer(secure, handler), 'https')
      }
      httpsServer.on('clientError', clientErrorHandler.bind({ errors: clientErrors, listener: 'https' }))
      connections = { http: trackConnections(http, 'connection'), https: trackConnections(httpsServer, 'secureConnection') }
      // Node's other limits end once a request is in: a client that stops reading its response (a stalled
      // or malicious reader: slowloris in reverse) held its connection, the response's buffers and its
      // request, in the write stage, for as long as it stayed connected. Node destroys an idle socket;
      // the request ends aborted by the server. (On HTTP/2 the limit is per session, not per stream.)
      http.setTimeout(config.connectionTimeoutMs)
      httpsServer.setTimeout(config.connectionTimeoutMs)
      // A failed handshake never reaches HTTP: without this it would only be a count. A client that leaves
      // mid-handshake (a port scanner, a TCP health check) is too common to be worth a line.
      httpsServer.on('tlsClientError', (err: NodeJS.ErrnoException) => {
        const reason = tlsFailureReason(err)
        if (reason !== 'client_reset') clientErrors.handshakeFailed(err, 'https', reason)
      })
      return http
    }
  })
  const https = httpsServer!
  // Fine mode on TLS listens through a cipher tap; otherwise this is the https server itself.
  const httpsListener = config.journeyEnabled ? journey.listenerFor(https) : https

  if (config.journeyEnabled) await app.register(journey.plugin)
  let draining = false
  // Node answers a request still running when the server stops with `Connection: keep-alive` (Node 24), and
  // the connection then idled until KEEP_ALIVE_TIMEOUT_MS before the process could exit: while draining, an
  // HTTP/1.x response says the connection ends, so its client does not reuse it, and Node closes it once
  // sent. (HTTP/2 forbids the header; its sessions got a GOAWAY.)
  app.addHook('onSend', (request, reply, payload, done) => {
    if (draining && request.raw.httpVersionMajor === 1) void reply.header('connection', 'close')
    done(null, payload)
  })
  // Log lines of a traced request carry its trace, so logs and the waterfall can be joined.
  app.addHook('onRequest', (request, reply, done) => {
    const rec = request.journey
    if (rec?.traceId !== undefined) {
      request.log = request.log.child({ trace_id: rec.traceId, span_id: rec.spanId })
      reply.log = request.log
    }
    done()
  })
  await app.register(demoApp, {
    computeMaxMs: config.computeMaxMs,
    ioMaxMs: config.ioMaxMs,
    downloadMaxKb: config.downloadMaxKb,
    workerThreads: config.workerThreads
  })
  await app.ready()
  if (config.maxConnections !== undefined) limitConnections({ http: app.server, https: httpsListener }, config.maxConnections, clientErrors)

  const reusePort = config.acceptStrategy === 'reuseport'
  if (role.kind === 'worker') {
    let ports: RunningServer['ports']
    try {
      ports = {
        http: await listen(app.server, config.httpPort, config.host, 'HTTP_PORT', reusePort, config.listenBacklog),
        https: await listen(httpsListener, config.httpsPort, config.host, 'HTTPS_PORT', reusePort, config.listenBacklog),
        metrics: 0
      }
    } catch (err) {
      return await abandon(err)
    }
    log.info({ ...ports, strategy: config.acceptStrategy }, 'worker listening')
    return running(undefined, ports)
  }

  const admin = await createAdmin(log)
  admin.get('/metrics', async (request, reply) => {
    const { contentType, body } = await exposition(telemetry.registry, request.headers.accept)
    return reply.type(contentType).send(body)
  })
  if (config.journeyEnabled) journey.registerPage(admin, { jaegerUrl: config.jaegerUiUrl })
  admin.get('/healthz', async () => ({ status: 'ok' }))
  admin.get('/readyz', async (_request, reply) => {
    if (draining || !app.server.listening || !httpsListener.listening) return reply.code(503).send({ status: 'draining' })
    return { status: 'ready' }
  })
  await admin.ready()

  let ports: RunningServer['ports']
  try {
    ports = {
      http: await listen(app.server, config.httpPort, config.host, 'HTTP_PORT', reusePort, config.listenBacklog),
      https: await listen(httpsListener, config.httpsPort, config.host, 'HTTPS_PORT', reusePort, config.listenBacklog),
      metrics: await listen(admin.server, config.metricsPort, config.metricsHost, 'METRICS_PORT')
    }
  } catch (err) {
    return await abandon(err, admin)
  }
  log.info({ ...ports, host: config.host, metricsHost: config.metricsHost, precision: config.precision }, 'listening')
  log.info(`the journey page: http://${config.metricsHost === '0.0.0.0' ? '127.0.0.1' : config.metricsHost}:${ports.metrics}/journey`)
  return running(admin, ports)

  // A start-up that fails while binding (a port in use) first lets go of what it began: the listeners
  // already bound, the compute pool's threads, the journey's timers. Otherwise an in-process caller is left
  // holding them, and main.ts's process.exit(2) races worker threads that may still be booting (Node has
  // ended such exits by a signal: nodejs/node#25007).
  async function abandon (err: unknown, admin?: FastifyInstance): Promise<never> {
    await Promise.all([closeServer(app.server), closeServer(httpsListener)]) // no connections yet
    await release(admin)
    throw err
  }

  /** What start-up began besides the public listeners: the apps (the compute pool), the journey, the log hooks. */
  async function release (admin: FastifyInstance | undefined): Promise<void> {
    await app.close()
    if (admin !== undefined) {
      await admin.close()
      await closeServer(admin.server)
    }
    // The journey first: it waits for connections still closing, whose cut-off requests are logged too.
    await journey.close()
    channels.request.unsubscribe(logCutOff)
    clientErrors.close()
  }

  function running (admin: FastifyInstance | undefined, ports: RunningServer['ports']): RunningServer {
    return {
      app, admin, http: app.server, https, journey, ports,
      async close (whenDrained) {
        if (draining) return
        draining = true
        let timer: NodeJS.Timeout | undefined
        const deadline = new Promise<'timeout'>(resolve => { timer = setTimeout(resolve, config.shutdownTimeoutMs, 'timeout') })
        const drained = Promise.all([
          closeServer(app.server, app.server, undefined, connections?.http),
          closeServer(httpsListener, https as { closeIdleConnections?: () => void }, sessions, connections?.https)
        ]).then(() => 'drained' as const)
        const outcome = await Promise.race([drained, deadline])
        clearTimeout(timer)
        if (outcome === 'timeout') {
          log.warn({ deadlineMs: config.shutdownTimeoutMs }, 'shutdown deadline reached: closing remaining connections')
          app.server.closeAllConnections()
          if ('closeAllConnections' in https) https.closeAllConnections()
          for (const session of sessions) session.destroy()
          connections?.https.destroyAll() // HTTP/2's sessions that were told to go away and did not
          await drained
        }
        await whenDrained?.()
        await release(admin)
      }
    }
  }
}
