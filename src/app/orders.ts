// The Order domain object: decoded from protobuf or JSON into one plain shape, then summarised.
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'

interface LineItem { sku: string, quantity: number, unitPriceCents: number }
export interface Order { id: string, customer: string, currency: string, items: LineItem[] }

const root = protobuf.loadSync(fileURLToPath(new URL('./order.proto', import.meta.url)))
const OrderType = root.lookupType('journey.Order')

/** Throws on bytes that are not an Order; the caller maps that to 400. */
export function decodeOrder (bytes: Uint8Array): Order {
  const msg = OrderType.decode(bytes)
  // longs: Number — prices fit easily; defaults: true so absent fields look like proto3 defaults in JSON too.
  return OrderType.toObject(msg, { longs: Number, defaults: true, arrays: true }) as Order
}

export function encodeOrder (order: Order): Uint8Array {
  return OrderType.encode(OrderType.fromObject(order)).finish()
}

export function summarize (order: Order): { id: string, customer: string, itemCount: number, totalCents: number, currency: string } {
  let itemCount = 0
  let totalCents = 0
  for (const item of order.items) {
    itemCount += item.quantity
    totalCents += item.quantity * item.unitPriceCents
  }
  return { id: order.id, customer: order.customer, itemCount, totalCents, currency: order.currency }
}

export const orderSchema = {
  type: 'object',
  required: ['id', 'customer', 'currency', 'items'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 64 },
    customer: { type: 'string', minLength: 1, maxLength: 256 },
    currency: { type: 'string', pattern: '^[A-Z]{3}$' },
    items: {
      type: 'array',
      maxItems: 10_000,
      items: {
        type: 'object',
        required: ['sku', 'quantity', 'unitPriceCents'],
        additionalProperties: false,
        properties: {
          sku: { type: 'string', minLength: 1, maxLength: 64 },
          quantity: { type: 'integer', minimum: 1, maximum: 1_000_000 },
          unitPriceCents: { type: 'integer', minimum: 0, maximum: 1_000_000_000 }
        }
      }
    }
  }
} as const
