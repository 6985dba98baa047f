// The journey in a NestJS app on its Fastify adapter, as docs/plugin.md's recipe sets it up. Nest builds the
// Fastify instance itself and adds its middleware (through @fastify/middie, an onRequest hook) when the
// app is created, so the plugin goes onto the adapter's instance before NestFactory.create(): otherwise an
// async middleware defers the journey's onRequest hook and its time lands in parse (said once, as
// REQUEST_JOURNEY_LATE_HOOK). Nest runs guards, interceptors and pipes inside the route handler Fastify
// calls, so they are the handler stage; its routes are registered once the plugin has loaded, so each is
// wrapped and labelled by its template.
//
// The decorators are applied as functions: Node's type stripping runs no decorator transform.
import 'reflect-metadata'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Controller, Get, Injectable, Module, Param, UseGuards, type MiddlewareConsumer } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify'
import { Registry } from 'prom-client'
import { request } from 'undici'
import { createJourney, type Journey } from '../../src/journey/index.ts'
import { meanMs, parseMetrics } from '../../experiments/lib/metrics.ts'
import { journeyWarnings } from '../helpers/warnings.ts'

const MIDDLEWARE_MS = 20
const GUARD_MS = 20

const warnings = journeyWarnings()

class SlowMiddleware { use (_req: unknown, _res: unknown, next: () => void): void { setTimeout(next, MIDDLEWARE_MS) } }
Injectable()(SlowMiddleware)
class SlowGuard { async canActivate (): Promise<boolean> { await sleep(GUARD_MS); return true } }

class UsersController { find (id: string): { id: string } { return { id } } }
Controller('users')(UsersController)
UseGuards(SlowGuard)(UsersController)
Get(':id')(UsersController.prototype, 'find', Object.getOwnPropertyDescriptor(UsersController.prototype, 'find')!)
Param('id')(UsersController.prototype, 'find', 0)

class AppModule { configure (consumer: MiddlewareConsumer): void { consumer.apply(SlowMiddleware).forRoutes('*') } }
Module({ controllers: [UsersController] })(AppModule)

async function nestApp (journey: Journey, pluginFirst: boolean): Promise<{ app: NestFastifyApplication, base: string }> {
  const adapter = new FastifyAdapter()
  if (pluginFirst) await adapter.getInstance().register(journey.plugin)
  const app = await NestFactory.create<NestFastifyApplication>(AppModule, adapter, { logger: false })
  if (!pluginFirst) await app.register(journey.plugin)
  await app.listen(0, '127.0.0.1')
  return { app, base: await app.getUrl() }
}

async function get (url: string): Promise<number> {
  const r = await request(url)
  await r.body.text()
  return r.statusCode
}

/** Mean ms per request of a histogram series, from the registry as Prometheus reads it (NaN without one). */
async function mean (registry: Registry, metric: string, match: Record<string, string>): Promise<number> {
  return meanMs(new Map(), parseMetrics(await registry.metrics()), metric, match)
}

const HANDLER = { stage: 'handler', method: 'GET', route: '/users/:id' }
const PARSE = { stage: 'parse', method: 'GET', route: '/users/:id' }
const HOOKS = { gap: 'hooks', method: 'GET', route: '/users/:id' }

// First: the LATE_HOOK warning is said once per process, so the recipe's silence is checked before it.
test('the plugin on the adapter before NestFactory.create(): routes by template, guards in handler, middleware in the hooks gap, nothing said', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const { app, base } = await nestApp(journey, true)
  try {
    assert.equal(await get(`${base}/users/7`), 200)
    assert.equal(await get(`${base}/users/8`), 200)
    assert.equal(await get(`${base}/nope`), 404)
    await sleep(20)
    assert.deepEqual(warnings, [])
    assert.ok(await mean(registry, 'journey_stage_duration_seconds', HANDLER) >= GUARD_MS - 2, 'the guard ran inside the handler stage')
    assert.ok(await mean(registry, 'journey_gap_duration_seconds', HOOKS) >= MIDDLEWARE_MS - 2, 'the middleware is the hooks gap')
    const text = await registry.metrics()
    assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/users\/:id",http_response_status_code="200"[^}]*\} 2/)
    assert.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\(unmatched\)",http_response_status_code="404"[^}]*\} 1/)
  } finally {
    await app.close()
    journey.close()
  }
})

test('registered through app.register() after NestFactory.create(): the middleware lands in parse, and that is said', async () => {
  const registry = new Registry()
  const journey = createJourney({ registry })
  const { app, base } = await nestApp(journey, false)
  try {
    assert.equal(await get(`${base}/users/7`), 200)
    await sleep(20)
    assert.deepEqual(warnings.map(w => w.code), ['REQUEST_JOURNEY_LATE_HOOK'])
    assert.match(warnings[0]!.message, /NestJS.*FastifyAdapter's instance before NestFactory\.create\(\)/, 'with the way out')
    assert.ok(await mean(registry, 'journey_stage_duration_seconds', PARSE) >= MIDDLEWARE_MS - 2, 'the middleware\'s wait is in parse')
    assert.ok(await mean(registry, 'journey_stage_duration_seconds', HANDLER) >= GUARD_MS - 2)
  } finally {
    await app.close()
    journey.close()
  }
})
