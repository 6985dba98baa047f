// Mistakes in setting the journey up that would otherwise only show as missing numbers (a route added
// before the plugin, a server it does not observe, a hook that defers it, tracing plugins in the wrong
// order, a tracer that records nothing, the plugin inside an encapsulated context, an addon never built):
// each said once, as a Node warning with its own code, printed to stderr whatever the app's logger, since
// Fastify's own logger may be off. test/journey/misuse.test.ts triggers each one (what the install or the
// runtime lacks: unmeasured.test.ts and package.test.ts).
import type { FastifyInstance } from 'fastify'
import { addonDenied, addonProblem } from './tcp-info.ts'

let unobservedWarned = false
export function warnUnobserved (): void {
  if (unobservedWarned) return
  unobservedWarned = true
  process.emitWarning('requests arrive on a server the journey does not observe, so they are not measured: it observes the app\'s own server and those built by journey.serverFactory(); pass any other to journey.observeServer()', { code: 'REQUEST_JOURNEY_UNOBSERVED' })
}
const unwrappedWarned = new Set<string>()
export function warnUnwrapped (method: string, url: string): void {
  const key = `${method} ${url}`
  if (unwrappedWarned.has(key)) return
  unwrappedWarned.add(key)
  process.emitWarning(`route ${key} was added before the journey plugin had loaded, so its handler stage is not measured (it shows as a gap): Fastify runs a plugin's onRoute hook only for routes added after the plugin loads, so register journey.plugin before your routes and await it (\`await app.register(journey.plugin)\`), or declare the routes in a plugin registered after it`, { code: 'REQUEST_JOURNEY_UNWRAPPED_ROUTE' })
}

// Plugins that start a request span of their own in their onRequest hook. Registered after the journey,
// that span starts after the journey's head decision, so each request becomes two traces; registered
// before, the journey's request span becomes its child (test/journey/coexist-fastify-otel.test.ts).
const TRACING_PLUGINS = ['@fastify/otel']
export function warnTracedAfter (fastify: FastifyInstance): void {
  const before = TRACING_PLUGINS.filter(name => fastify.hasPlugin(name))
  fastify.addHook('onReady', function (done) {
    for (const name of TRACING_PLUGINS) {
      if (before.includes(name) || !this.hasPlugin(name)) continue
      process.emitWarning(`${name} was registered after the journey plugin, so each request becomes two traces (its request span starts after the journey's sampling decision): register ${name} first`, { code: 'REQUEST_JOURNEY_PLUGIN_ORDER' })
    }
    done()
  })
}

/**
 * Route templates given to ignoreRoutes that no route the journey saw added has, once the app is ready: a
 * typo, a prefix left out, or a route added before the plugin loaded (which it cannot mark, nor wrap).
 */
export function warnIgnoredUnknown (unknown: string[]): void {
  if (unknown.length === 0) return
  process.emitWarning(`ignoreRoutes names ${unknown.join(', ')}, which no route added after the journey plugin has, so nothing is ignored for ${unknown.length === 1 ? 'it' : 'them'}: give route templates as declared, prefix included (/v1/users/:id), of routes added once the plugin has loaded`, { code: 'REQUEST_JOURNEY_IGNORE_UNKNOWN' })
}

let lateWarned = false
export function warnLate (): void {
  if (lateWarned) return
  lateWarned = true
  process.emitWarning('requests reach the journey\'s onRequest hook only after something before it deferred them (an async onRequest hook registered before the journey plugin, or the server\'s handler): that time is in their parse stage, and requests such a hook answers itself count under (unmatched); register journey.plugin first (with NestJS, whose middleware is such a hook: on the FastifyAdapter\'s instance before NestFactory.create())', { code: 'REQUEST_JOURNEY_LATE_HOOK' })
}

/**
 * Said once per journey by its span consumer (each journey's tracer is its own set-up); not when the SDK was
 * turned off on purpose (OTEL_SDK_DISABLED=true, read as the SDK reads it: trimmed, any case), which starts
 * nothing, so the advice to start it would be wrong.
 */
export function warnNotRecorded (): void {
  if ((process.env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return
  process.emitWarning('the journey kept a request, but its tracer records nothing, so no span is exported: no tracer provider is registered (start the OpenTelemetry SDK with tracing.sdkOptions before serving), or the provider samples with a sampler of its own (give it tracing.sdkOptions, or pass createJourney a tracer from a provider that has them)', { code: 'REQUEST_JOURNEY_NOT_RECORDED' })
}

/**
 * Said once per journey by its span consumer: the provider records the journey's spans but with ids and a
 * sampler of its own, as an SDK started without tracing.sdkOptions does when it samples everything (the
 * default, and what `--import @opentelemetry/auto-instrumentations-node/register` starts).
 */
export function warnNoSdkOptions (): void {
  process.emitWarning('the journey\'s spans are recorded by a tracer provider started without tracing.sdkOptions (the auto-instrumentations\' register starts one such), which gives them ids and sampling decisions of its own: the ids handed out while a request runs (request.journey, Server-Timing) are not its exported span\'s, another instrumentation\'s server span is not its parent (a second trace for each request without incoming trace context), and requests kept for being slow or failed are recorded only when that sampler says so; start the SDK yourself with { ...tracing.sdkOptions } (README: zero-code instrumentation)', { code: 'REQUEST_JOURNEY_NO_SDK_OPTIONS' })
}

/**
 * What this process cannot measure, said once when a plugin is registered: read and parse on a Node without
 * the parser internals they rely on (observe-parser.ts); on Linux, the kernel's part when the plugin was
 * bundled into the app's file (bundled.ts), or else without the TCP_INFO addon — no prebuilt one for this
 * platform, and an install that ran no build script (npm 12, pnpm and Yarn 4 run a dependency's only once
 * approved; `--ignore-scripts`) or had no compiler. Off Linux the
 * addon and the sampler have nothing to read, so neither is a mistake there. None stops serving: every
 * other figure is measured.
 */
export interface Unmeasured {
  parserSeen: boolean
  /** How loading the TCP_INFO addon failed, if it was tried and did. */
  addonLoadError: string | undefined
  /** The addon loaded, but this kernel's TCP_INFO is too short to measure with (tcp-info.ts says how short). */
  tcpInfoShort: string | undefined
  bundledInto: string | undefined
  /** kernelSampleMs was asked for (its sampler is not started in a bundle). */
  samplerWanted: boolean
}
let unmeasuredWarned = false
export function warnUnmeasured ({ parserSeen, addonLoadError, tcpInfoShort, bundledInto, samplerWanted }: Unmeasured): void {
  if (unmeasuredWarned) return
  unmeasuredWarned = true
  if (!parserSeen) {
    process.emitWarning(`Node ${process.version} has no kOnMessageBegin and kOnHeadersComplete slots on _http_common's HTTPParser, from whose callbacks the journey marks a request's first byte and its parsed headers: its HTTP/1.1 requests have no read or parse stage (their request spans start at decode), and every other stage is measured`, { code: 'REQUEST_JOURNEY_PARSER_UNSEEN' })
  }
  if (process.platform !== 'linux') return
  if (bundledInto !== undefined) {
    const sampler = samplerWanted ? ', and the accept-queue sampler (kernelSampleMs) is not started: its worker thread would run your whole bundle again' : ''
    process.emitWarning(`the journey is bundled into ${bundledInto}: its TCP_INFO addon is not beside it, so the wait in the kernel before accept and before read is not measured${sampler}; keep fastify-request-journey out of the bundle (esbuild: --external:fastify-request-journey or --packages=external; webpack: externals) and install it beside the bundle`, { code: 'REQUEST_JOURNEY_BUNDLED' })
  } else if (tcpInfoShort !== undefined) {
    process.emitWarning(`${tcpInfoShort}, so the wait in the kernel before accept and before read (journey.accept.kernel_wait_ms, journey_accept_kernel_wait_seconds, journey_read_kernel_wait_seconds) is not measured: on an emulated kernel it cannot be. Run the service on a kernel of its own architecture to have it, or say you go without: --disable-warning=REQUEST_JOURNEY_NO_TCP_INFO`, { code: 'REQUEST_JOURNEY_NO_TCP_INFO' })
  } else if (addonLoadError !== undefined && addonDenied(addonLoadError)) {
    process.emitWarning(`the TCP_INFO addon (native/) ${addonProblem(addonLoadError)} (loading it: ${addonLoadError}), so the wait in the kernel before accept and before read (journey.accept.kernel_wait_ms, journey_accept_kernel_wait_seconds, journey_read_kernel_wait_seconds) is not measured. To have it, run with --allow-addons and --allow-fs-read for the package's native/ folder and for /etc/alpine-release (node-gyp-build, which finds the addon, reads it to tell the C library); or say you go without: --disable-warning=REQUEST_JOURNEY_NO_TCP_INFO`, { code: 'REQUEST_JOURNEY_NO_TCP_INFO' })
  } else if (addonLoadError !== undefined) {
    process.emitWarning(`the TCP_INFO addon (native/) ${addonProblem(addonLoadError)} (loading it: ${addonLoadError}), so the wait in the kernel before accept and before read (journey.accept.kernel_wait_ms, journey_accept_kernel_wait_seconds, journey_read_kernel_wait_seconds) is not measured. The package ships it prebuilt for Linux x64 and arm64 with glibc only; elsewhere its install script builds it (with python3, make and a C compiler), which npm 12, pnpm and Yarn 4 run only once the app approves it — npm: \`npm install-scripts approve fastify-request-journey\` (npm 11.19 and newer; older npm runs it anyway), then \`npm rebuild fastify-request-journey\`; pnpm: \`pnpm approve-builds\`; Yarn 4: package.json's dependenciesMeta marks it \`"built": true\`. Or say you go without: --disable-warning=REQUEST_JOURNEY_NO_TCP_INFO`, { code: 'REQUEST_JOURNEY_NO_TCP_INFO' })
  }
}

/**
 * The plugin registered inside an encapsulated context (a plugin registered without fastify-plugin, with a
 * prefix or not): its hooks then run for that context's routes only, and requests to every other route
 * reach no journey hook, so they count as answered before any hook, under (unmatched). Fastify builds each
 * such context with Object.create() from its parent (lib/plugin-override.js), so only the root instance and
 * what fastify-plugin passes through are plain objects; test/journey/misuse.test.ts holds both sides.
 */
export function warnEncapsulated (fastify: FastifyInstance): void {
  if (Object.getPrototypeOf(fastify) === Object.prototype) return
  const where = fastify.prefix === '' ? 'an encapsulated plugin' : `the encapsulated context of prefix ${fastify.prefix}`
  process.emitWarning(`the journey plugin was registered inside ${where}: its hooks run for that context's routes only, so requests to any other route (Fastify's default 404 handler among them) count as (unmatched), without their decode, handler and serialize stages; register journey.plugin on the root instance (a fastify-cli app.js is itself an encapsulated plugin: export it wrapped in fastify-plugin)`, { code: 'REQUEST_JOURNEY_ENCAPSULATED' })
}
