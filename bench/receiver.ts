// The bench's OTLP/HTTP receiver, run by bench/run.ts on the load generator's core: answers 200 to every
// export and, asked over IPC, says how many bytes and spans it has received so far.
import { createServer } from 'node:http'
import { countSpans } from './otlp-spans.ts'

let bytes = 0
let spans = 0
let undecodable = 0
createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (d: Buffer) => chunks.push(d))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    bytes += body.length
    try { spans += countSpans(body) } catch { undecodable++ }
    res.end()
  })
}).listen(Number(process.env.PORT ?? 4318), '127.0.0.1')
process.on('message', () => process.send!({ bytes, spans, undecodable }))
