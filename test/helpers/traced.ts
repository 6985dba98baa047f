// A journey that traces every request into an in-memory exporter, on a Fastify app not yet listening: the
// set-up of the tests that read spans of a plugin next to other plugins or options. The caller registers
// journey.plugin itself, since some tests put another plugin before it.
// (Its own module: test/helpers/app.ts loads Fastify lazily, for the tests that patch `http` first.)
import { AlwaysOnSampler, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Registry } from 'prom-client'
import { createJourney, journeyTracing, type Journey, type JourneyOptions } from '../../src/journey/index.ts'

export interface TracedJourney {
  spans: InMemorySpanExporter
  registry: Registry
  journey: Journey
  app: FastifyInstance
  /** Listens on an ephemeral loopback port; returns the port. */
  listen: () => Promise<number>
  /** The app, the journey and the tracer provider, in that order. */
  close: () => Promise<void>
}

export function tracedJourney (opts: { fastify?: FastifyServerOptions, journey?: Omit<JourneyOptions, 'registry' | 'tracing' | 'tracer'> } = {}): TracedJourney {
  const spans = new InMemorySpanExporter()
  const tracing = journeyTracing({ headSampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor({ exporter: spans })], finishedRequestSpans: true })
  const provider = new TracerProvider(tracing.sdkOptions)
  const registry = new Registry()
  const journey = createJourney({ ...opts.journey, registry, tracing, tracer: provider.getTracer('request-journey') })
  // serverFactory() builds HTTP/1 servers; an HTTP/2 app's own server is observed by the plugin itself.
  const http2 = (opts.fastify as { http2?: boolean } | undefined)?.http2 === true
  const app = Fastify({ ...opts.fastify, ...(http2 ? {} : { serverFactory: journey.serverFactory() }) })
  return {
    spans,
    registry,
    journey,
    app,
    async listen () {
      await app.listen({ port: 0, host: '127.0.0.1' })
      return (app.server.address() as { port: number }).port
    },
    async close () {
      await app.close()
      await journey.close()
      await provider.shutdown()
    }
  }
}
