// The bench's baseline: the same demo routes on the same kind of servers, with no telemetry at all.
import { createServer } from 'node:http'
import Fastify from 'fastify'
import { demoApp } from '../src/app/index.ts'

const app = Fastify({ serverFactory: (handler) => createServer({ keepAliveTimeout: 5000 }, handler) })
await app.register(demoApp, { computeMaxMs: 2000, ioMaxMs: 10000, downloadMaxKb: 102400, workerThreads: 1 })
await app.listen({ port: Number(process.env.HTTP_PORT ?? 3000), host: '127.0.0.1' })
process.stdout.write(JSON.stringify({ msg: 'listening', http: (app.server.address() as { port: number }).port }) + '\n')
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
