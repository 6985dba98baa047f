// What an open connection costs in memory, with and without the journey: a minimal Fastify server (bare,
// or with the journey plugin, metrics only) holds N idle keep-alive connections, each of which sent one
// request; the server's heap after garbage collection and its RSS are read before and after, and divided
// by N. It prints both, alternating, so a drift of the machine hits each alike.
//
// Why it exists: the request benchmarks (npm run bench) say what a request costs; a server with thousands
// of idle keep-alive clients (browsers, pooled upstream clients) pays per open connection instead: the
// journey's connection record, its TCP_INFO view and its socket listeners live as long as the connection.
//
//   npm run bench:connections                  # 5,000 connections, 2 rounds of bare and journey
//   CONNECTIONS=10000 ROUNDS=3 npm run bench:connections
import { fork } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { stopChild } from './servers.ts'
import { median } from './stats.ts'

const N = Number(process.env.CONNECTIONS ?? 5000)
const ROUNDS = Number(process.env.ROUNDS ?? 2)
const KINDS = ['bare', 'journey'] as const
type Kind = typeof KINDS[number]

interface Memory { heap: number, rss: number }
interface Row { kind: Kind, heapBytes: number, rssKiB: number }

async function measure (kind: Kind): Promise<Row> {
  const server = fork(fileURLToPath(import.meta.url), [], {
    env: { PATH: process.env.PATH, CONNECTIONS_SERVER: kind }, execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const sockets: Socket[] = []
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('message', port => resolve(Number(port)))
      server.once('exit', code => reject(new Error(`the ${kind} server exited (${code}) before listening`)))
    })
    const base = `http://127.0.0.1:${port}`
    const memory = async (): Promise<Memory> => await (await request(`${base}/memory`)).body.json() as Memory
    for (let i = 0; i < 200; i++) await (await request(`${base}/`)).body.text() // warm: code compiled, pools filled
    const before = await memory()
    let answered = 0
    for (let i = 0; i < N; i++) {
      const s = connect(port, '127.0.0.1')
      s.on('error', () => {})
      s.once('data', () => { answered++ })
      s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n')
      sockets.push(s)
      if (i % 200 === 199) await new Promise(resolve => setTimeout(resolve, 20)) // not past the listen backlog
    }
    for (let waited = 0; answered < N && waited < 10_000; waited += 50) await new Promise(resolve => setTimeout(resolve, 50))
    if (answered < N) throw new Error(`only ${answered} of ${N} connections were answered`)
    const after = await memory()
    return { kind, heapBytes: (after.heap - before.heap) / N, rssKiB: (after.rss - before.rss) / N / 1024 }
  } finally {
    for (const s of sockets) s.destroy()
    await stopChild(server)
  }
}

async function drive (): Promise<void> {
  const rows: Row[] = []
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of KINDS) {
      const row = await measure(kind)
      rows.push(row)
      console.log(`round ${r + 1}, ${kind}: heap +${Math.round(row.heapBytes)} B and RSS +${row.rssKiB.toFixed(1)} KiB a connection`)
    }
  }
  console.log('\n| server | heap per idle connection | RSS per idle connection |\n|---|---:|---:|')
  for (const kind of KINDS) {
    const of = rows.filter(r => r.kind === kind)
    console.log(`| ${kind} | ${Math.round(median(of.map(r => r.heapBytes)))} B | ${median(of.map(r => r.rssKiB)).toFixed(1)} KiB |`)
  }
  console.log(`\nMedians of ${ROUNDS} round(s); each a fresh server holding ${N} keep-alive connections that sent one GET / each; heap used after two full collections, and RSS, before and after, divided by ${N}.`)
}

// Last, so that everything above is defined before the driver runs.
if (process.env.CONNECTIONS_SERVER !== undefined) {
  // The server side of one measurement (this file forked again by the driver above).
  const { default: Fastify } = await import('fastify')
  const { Registry } = await import('prom-client')
  const { createJourney } = await import('../src/journey/index.ts')
  const journey = process.env.CONNECTIONS_SERVER === 'journey' ? createJourney({ registry: new Registry() }) : undefined
  const app = Fastify({ keepAliveTimeout: 600_000 })
  if (journey !== undefined) await app.register(journey.plugin)
  app.get('/', async () => ({ hello: 'world' }))
  app.get('/memory', async () => {
    const gc = (globalThis as { gc?: () => void }).gc!
    gc()
    gc()
    const m = process.memoryUsage()
    return { heap: m.heapUsed, rss: m.rss }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // The driver learns the port from here: a fixed one could be another process's.
  process.send!((app.server.address() as { port: number }).port)
} else {
  await drive()
}
