// A bounded soak: mixed load for a few minutes, then RSS, heap and open handles at start and end.
// Not a test: it prints figures. Growth should be small and flat.
//
//   npm run soak                  # 3 minutes
//   SOAK_SECONDS=600 npm run soak
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'

const seconds = Number(process.env.SOAK_SECONDS ?? 180)
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
const ports = { http: 3200, https: 3643, metrics: 9480 }
const server = spawn(process.execPath, [main], {
  env: { PATH: process.env.PATH, HOST: '127.0.0.1', HTTP_PORT: String(ports.http), HTTPS_PORT: String(ports.https), METRICS_PORT: String(ports.metrics), LOG_LEVEL: 'warn', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
  stdio: ['ignore', 'inherit', 'inherit']
})

interface Sample { rssMb: number, heapUsedMb: number, handles: number, openConnections: number }
async function sample (): Promise<Sample> {
  const text = await (await request(`http://127.0.0.1:${ports.metrics}/metrics`)).body.text()
  const get = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)`, 'm').exec(text)?.[1])
  return {
    rssMb: get('process_resident_memory_bytes') / 2 ** 20,
    heapUsedMb: get('nodejs_heap_size_used_bytes') / 2 ** 20,
    handles: get('nodejs_active_handles_total'),
    openConnections: Number(/journey_connections_active\{listener="http"\} (\d+)/.exec(text)?.[1] ?? 0) + Number(/journey_connections_active\{listener="https"\} (\d+)/.exec(text)?.[1] ?? 0)
  }
}

for (let i = 0; ; i++) {
  try { await (await request(`http://127.0.0.1:${ports.metrics}/readyz`)).body.text(); break } catch { await sleep(100) }
  if (i > 200) throw new Error('server did not start')
}
const insecure = new Agent({ connect: { rejectUnauthorized: false }, connections: 8 })
const paths = ['/', '/io?ms=5', '/compute?ms=2', '/download?kb=64', '/nope']
async function load (until: number): Promise<number> {
  let n = 0
  const worker = async (w: number): Promise<void> => {
    while (Date.now() < until) {
      const base = w % 2 === 0 ? `http://127.0.0.1:${ports.http}` : `https://127.0.0.1:${ports.https}`
      const r = await request(base + paths[n % paths.length]!, { dispatcher: insecure })
      await r.body.arrayBuffer()
      n++
    }
  }
  await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)))
  return n
}

await load(Date.now() + 10_000) // warm up
await sleep(1000)
const first = await sample()
const rows: Array<Sample & { at: string }> = [{ at: '0 s', ...first }]
const step = Math.max(10, Math.floor(seconds / 6))
let total = 0
for (let t = step; t <= seconds; t += step) {
  total += await load(Date.now() + step * 1000)
  await sleep(1000)
  rows.push({ at: `${t} s`, ...(await sample()) })
}
await insecure.close()
console.log(`\nsoak: ${total} requests in ${seconds} s (8 clients, HTTP and HTTPS, 10% sampled, collector unreachable)`)
console.table(rows.map(r => ({ ...r, rssMb: Math.round(r.rssMb), heapUsedMb: Math.round(r.heapUsedMb) })))
const last = rows.at(-1)!
console.log(`heap used ${first.heapUsedMb.toFixed(0)} → ${last.heapUsedMb.toFixed(0)} MB, RSS ${first.rssMb.toFixed(0)} → ${last.rssMb.toFixed(0)} MB, handles ${first.handles} → ${last.handles}`)
server.kill('SIGTERM')
