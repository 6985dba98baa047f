// Query-parameter and protobuf edge cases on every demo route: a clear 4xx or a correct answer, never a 500.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { request } from 'undici'
import { encodeOrder } from '../../src/app/orders.ts'
import { startTestServer, type TestServer } from '../helpers/server.ts'

let t: TestServer
before(async () => { t = await startTestServer({ MAX_HEADER_SIZE: '8192' }) })
after(async () => { await t.close() })

async function status (path: string, init: { method?: string, headers?: Record<string, string>, body?: string | Uint8Array } = {}): Promise<number> {
  const r = await request(t.http + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body })
  await r.body.text()
  return r.statusCode
}

const json = { 'content-type': 'application/json' }
const pb = { 'content-type': 'application/x-protobuf' }
const order = { id: 'o', customer: 'c', currency: 'EUR', items: [{ sku: 's', quantity: 1, unitPriceCents: 1 }] }

const cases: Array<[string, string, Parameters<typeof status>[1], number]> = [
  ['GET / ignores an unknown query', '/?x=1&x=2&%ZZ', {}, 200],
  ['POST /echo with a query string', '/echo?debug=1', { method: 'POST', headers: json, body: '{"message":"q"}' }, 200],
  ['POST /echo with an empty body', '/echo', { method: 'POST', headers: json, body: '' }, 400],
  ['POST /echo with JSON that is not an object', '/echo', { method: 'POST', headers: json, body: '"just a string"' }, 400],
  ['POST /echo with deeply nested items', '/echo', { method: 'POST', headers: json, body: '{"message":"x","items":[' + '['.repeat(5000) + ']'.repeat(5000) + ']}' }, 400],
  ['POST /echo with a deeply nested extra property (dropped)', '/echo', { method: 'POST', headers: json, body: '{"message":"x","deep":' + '['.repeat(5000) + ']'.repeat(5000) + '}' }, 200],
  ['GET /compute with ms twice', '/compute?ms=1&ms=2', {}, 400],
  // Ajv's coercion reads any JSON-ish number; what matters is that the limit holds.
  ['GET /compute with hex ms (16 ms)', '/compute?ms=0x10', {}, 200],
  ['GET /compute with an exponent beyond the limit', '/compute?ms=1e9', {}, 400],
  ['GET /compute with a fractional ms', '/compute?ms=1.5', {}, 400],
  ['GET /compute with an empty ms', '/compute?ms=', {}, 400],
  ['GET /io with a bad percent-escape', '/io?ms=%ZZ', {}, 400],
  ['GET /io with a huge number', '/io?ms=99999999999999999999999', {}, 400],
  ['GET /download with a negative size', '/download?kb=-1', {}, 400],
  ['GET /download with an unknown extra parameter', '/download?kb=1&foo=bar', {}, 200],
  ['GET / with a query longer than MAX_HEADER_SIZE', '/?q=' + 'a'.repeat(9000), {}, 431],
  ['POST /orders with protobuf of the wrong message', '/orders', { method: 'POST', headers: pb, body: Buffer.from([0x0a, 0x02, 0x08, 0x01]) }, 400],
  ['POST /orders with a truncated message', '/orders', { method: 'POST', headers: pb, body: encodeOrder(order).subarray(0, 5) }, 400],
  ['POST /orders with a negative quantity in JSON', '/orders', { method: 'POST', headers: json, body: JSON.stringify({ ...order, items: [{ sku: 's', quantity: -1, unitPriceCents: 1 }] }) }, 400],
  ['POST /orders with too many items', '/orders', { method: 'POST', headers: pb, body: encodeOrder({ ...order, items: Array.from({ length: 10_001 }, () => ({ sku: 's', quantity: 1, unitPriceCents: 1 })) }) }, 400],
  ['POST /orders with protobuf and a charset parameter', '/orders', { method: 'POST', headers: { 'content-type': 'application/x-protobuf; charset=binary' }, body: encodeOrder(order) }, 200]
]

for (const [name, path, init, expected] of cases) {
  test(`${name} → ${expected}`, async () => {
    assert.equal(await status(path, init), expected)
  })
}
