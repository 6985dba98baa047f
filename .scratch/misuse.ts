import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { createJourney } from '../src/journey/index.ts'
const registry = new Registry()
const journey = createJourney({ registry })
const mode = process.env.MODE
const app = mode === 'nofactory' ? Fastify({ logger: { level: 'warn' } }) : Fastify({ logger: { level: 'warn' }, serverFactory: journey.serverFactory() })
if (mode === 'late') app.get('/early', async () => 'early')
await app.register(journey.plugin)
app.get('/late', async () => 'late')
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as any).port
for (const p of ['/early', '/late']) { const r = await fetch(`http://127.0.0.1:${port}${p}`); await r.text() }
await new Promise(r => setTimeout(r, 50))
console.log((await registry.metrics()).split('\n').filter(l => l.startsWith('journey_stage_duration_seconds_count')).join('\n') || '(no stage metrics)')
await app.close()
