// OTEL_RESOURCE_ATTRIBUTES, read as the OpenTelemetry SDK reads it. A module of its own, with no imports, so
// that config.ts (which every server loads, the bench's bare one included) can take service.name from it
// without loading the OpenTelemetry API.

type Env = Record<string, string | undefined>

/**
 * What a key must look like to be repeated in the log: a key followed by nothing, or something that does not
 * look like a name, may be the front of a pasted secret (base64 ends in '='). Values are never repeated.
 */
export const NAME_LIKE = /^[A-Za-z0-9_.-]{1,64}$/

/**
 * Why the SDK would throw away OTEL_RESOURCE_ATTRIBUTES, or undefined when it takes it. The specification has
 * an SDK discard the whole value on any error, and the JS SDK's env detector (ResourceAttributesEnvDetector
 * in @opentelemetry/resources) does so saying it only at debug level: one entry without `=`, or a value with
 * an unencoded `=` (`k8s.pod.labels=app=web`), and spans and pushed metrics quietly lose every attribute set
 * there (deployment.environment, service.namespace, …). Its rules, restated here so that judging the value
 * does not load that package when nothing is traced; test/otel-env.test.ts holds them to the detector itself.
 * Only keys are repeated, never values.
 */
export function resourceAttributesProblem (value: string): string | undefined {
  const entries = value.split(',').filter(e => e.trim() !== '')
  for (const [i, entry] of entries.entries()) {
    const parts = entry.split('=')
    const key = parts[0]!.trim()
    let why: string | undefined
    if (parts.length !== 2) why = parts.length === 1 ? 'is not key=value' : 'has a second = (written %3D in a key or value)'
    else if (key === '') why = 'has no key'
    else {
      try {
        if (decodeURIComponent(key).length > 255 || decodeURIComponent(parts[1]!.trim()).length > 255) why = 'is longer than 255 characters'
      } catch {
        why = 'has a % that does not begin a %XX escape (a literal % is written %25)'
      }
    }
    if (why === undefined) continue
    const named = parts.length > 1 && NAME_LIKE.test(key) ? ` (${key})` : ''
    return `OTEL_RESOURCE_ATTRIBUTES: entry ${i + 1} of ${entries.length}${named} ${why}, so the SDK ignores every entry of it: spans and pushed metrics carry none of its attributes`
  }
  return undefined
}

/**
 * An attribute set in OTEL_RESOURCE_ATTRIBUTES, read as the SDK reads it (the last entry for a key wins), or
 * undefined — also when the SDK would ignore the whole variable, so that what the app reads itself
 * (service.name, service.instance.id) agrees with what the SDK puts on spans.
 */
export function resourceAttributeFromEnv (env: Env, key: string): string | undefined {
  const value = env.OTEL_RESOURCE_ATTRIBUTES ?? ''
  if (resourceAttributesProblem(value) !== undefined) return undefined
  let found: string | undefined
  for (const entry of value.split(',')) {
    const [k, v] = entry.split('=')
    if (v !== undefined && decodeURIComponent(k!.trim()) === key) found = decodeURIComponent(v.trim()) // valid: judged above
  }
  return found === '' ? undefined : found // an empty name or id names nothing: the caller's default applies
}
