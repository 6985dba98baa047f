// A server's maxConnections: past it Node closes each new connection as soon as it accepts it, without a
// 'connection' event, so nothing else would ever see it. The journey counts it from the server's 'drop'
// event, under its listener, and never as accepted; the page says so too.
import assert from 'node:assert/strict'
import { createServer as createHttpsServer } from 'node:https'
import net from 'node:net'
import { after, test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../../src/journey/index.ts'
import { loadTlsMaterial } from '../../src/tls-cert.ts'
import { parseMetrics, sum } from '../../experiments/lib/metrics.ts'
import { connect, statusOf } from '../helpers/raw.ts'

const closing: Array<() => Promise<unknown> | void> = []
after(async () => { for (const close of closing.reverse()) await close() })

/** A plain TCP connection to `port`: whether the server closed it before sending a byte (within 2 s). */
async function closedUnserved (port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  let bytes = 0
  socket.on('data', (d: Buffer) => { bytes += d.length })
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  const closed = await Promise.race([new Promise(resolve => socket.on('close', () => resolve(true))), new Promise(resolve => setTimeout(resolve, 2000, false))])
  socket.destroy()
  return closed === true && bytes === 0
}

test('a connection dropped at maxConnections is counted under its listener, never as accepted; the page says so', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const app = Fastify()
  closing.push(async () => { await app.close(); journey.close() })
  await app.register(journey.plugin)
  app.get('/', async () => ({ hello: 'journey' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  void journey.recent // the page's view collects from its first use
  app.server.maxConnections = 1
  const port = (app.server.address() as net.AddressInfo).port
  // Exported at 0 before any drop: a series born at its first drop would hide that drop from increase(),
  // and from the alert that reads it (deploy/prometheus/alerts.yml).
  assert.match(await registry.metrics(), /^journey_connections_dropped_total\{listener="http"\} 0$/m)

  const held = await connect(port)
  await held.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  assert.equal(statusOf(await held.read(t => t.includes('journey'))), 200)
  assert.equal(await closedUnserved(port), true, 'the second connection is closed unserved')
  assert.equal(await closedUnserved(port), true, 'and the third')

  let m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_connections_dropped_total', { listener: 'http' }), 2)
  assert.equal(sum(m, 'journey_connections_accepted_total', { listener: 'http' }), 1, 'a dropped connection never reached user space')
  assert.equal(sum(m, 'journey_connection_errors_total', {}), 0, 'nor is it a connection error: it had no record')
  assert.equal(journey.recent.snapshot().connections.dropped, 2)

  // Under the limit again, new connections are served.
  held.close()
  await new Promise(resolve => setTimeout(resolve, 50))
  const next = await connect(port)
  await next.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  assert.equal(statusOf(await next.read()), 200)
  m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_connections_dropped_total', {}), 2)
  assert.equal(sum(m, 'journey_connections_accepted_total', { listener: 'http' }), 2)
})

test('fine mode on TLS: the cipher tap listens and drops; its drops are counted under the TLS server\'s listener', async () => {
  const material = await loadTlsMaterial(undefined, undefined)
  const registry = new Registry()
  const journey = createJourney({ registry, precision: 'fine' })
  const app = Fastify({
    serverFactory: (handler) => {
      const https = journey.observeServer(createHttpsServer({ key: material.key, cert: material.cert }, handler), 'public')
      const tap = journey.listenerFor(https)
      tap.maxConnections = 1
      closing.push(() => new Promise(resolve => tap.close(resolve)))
      void new Promise<void>(resolve => tap.listen(0, '127.0.0.1', resolve)).then(() => { tapPort = (tap.address() as net.AddressInfo).port })
      return https
    }
  })
  let tapPort = 0
  closing.push(async () => { await app.close(); journey.close() })
  await app.register(journey.plugin)
  app.get('/', async () => ({ hello: 'journey' }))
  await app.ready()
  while (tapPort === 0) await new Promise(resolve => setTimeout(resolve, 10))

  const held = await connect(tapPort, true)
  await held.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  assert.equal(statusOf(await held.read(t => t.includes('journey'))), 200)
  assert.equal(await closedUnserved(tapPort), true)
  const m = parseMetrics(await registry.metrics())
  assert.equal(sum(m, 'journey_connections_dropped_total', { listener: 'public' }), 1)
  assert.equal(sum(m, 'journey_connections_accepted_total', { listener: 'public' }), 1)
  held.close()
})
