import { createServer } from 'node:http'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
const server = createServer((req, res) => res.end('ok'))
server.maxConnections = 2
server.on('drop', (d) => console.log('drop', d))
server.on('connection', () => console.log('connection'))
await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
const port = (server.address() as { port: number }).port
const socks = []
for (let i = 0; i < 4; i++) {
  const s = connect(port, '127.0.0.1')
  s.on('connect', () => { console.log(i, 'connected'); s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n') })
  s.on('data', d => console.log(i, 'data', d.toString().split('\r\n')[0]))
  s.on('error', e => console.log(i, 'error', e.message))
  s.on('close', () => console.log(i, 'close'))
  socks.push(s)
  await sleep(50)
}
await sleep(200)
for (const s of socks) s.destroy()
server.close()
