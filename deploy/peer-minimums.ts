// The oldest versions of its peers the journey package works with (deploy/pack-journey.ts turns them into
// its peer ranges; test/package.test.ts installs the package beside exactly each line of them).
//
// Not this project's own ranges, which follow the newest releases: a peer range above what an app has makes
// npm upgrade the app's Fastify, say, or refuse to install beside a pinned one. Fastify is used for its types
// only (any 5.x); prom-client from 15.1.2 (15.0 brought OpenMetrics, 15.1.2 typed its content-type constants,
// which the README's example uses). OpenTelemetry JS comes in two lines that do not mix: 3.x (October 2026)
// wants API 1.10, 2.x wants an API below 1.10, and most services are still on 2.x. The journey uses only what
// both have — sdk-trace's interfaces (SpanProcessor, Sampler, ReadableSpan) are the same in 2.9 and 3.x —
// so it takes either, from sdk-trace's first release in each (2.9.0, 3.0.0).

/** One set of peers an app can have: the oldest of each that the journey works with. */
export type PeerLine = Readonly<Record<string, string>>

const common = { fastify: '5.0.0', 'prom-client': '15.1.2', '@opentelemetry/semantic-conventions': '1.29.0' }
export const PEER_LINES: Readonly<Record<string, PeerLine>> = {
  'OpenTelemetry JS 2.x': {
    ...common,
    '@opentelemetry/api': '1.9.0',
    '@opentelemetry/core': '2.9.0',
    '@opentelemetry/resources': '2.9.0',
    '@opentelemetry/sdk-trace': '2.9.0'
  },
  'OpenTelemetry JS 3.x': {
    ...common,
    '@opentelemetry/api': '1.10.0',
    '@opentelemetry/core': '3.0.0',
    '@opentelemetry/resources': '3.0.0',
    '@opentelemetry/sdk-trace': '3.0.0'
  }
}

/**
 * A peer range per package: from its oldest version in each major the lines use (`^2.9.0 || ^3.0.0`), so
 * one line's floor within a major (API 1.9.0) covers the next line's (1.10.0).
 */
export function peerRanges (lines: Readonly<Record<string, PeerLine>>): Record<string, string> {
  const oldestPerMajor = new Map<string, Map<string, string>>()
  for (const line of Object.values(lines)) {
    for (const [name, version] of Object.entries(line)) {
      const majors = oldestPerMajor.get(name) ?? new Map<string, string>()
      oldestPerMajor.set(name, majors)
      const major = version.split('.')[0]!
      const known = majors.get(major)
      if (known === undefined || compareVersions(version, known) < 0) majors.set(major, version)
    }
  }
  return Object.fromEntries([...oldestPerMajor].map(([name, majors]) =>
    [name, [...majors.values()].sort(compareVersions).map(v => `^${v}`).join(' || ')]))
}

function compareVersions (a: string, b: string): number {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)]
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return 0
}
