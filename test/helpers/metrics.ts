// Reading samples out of Prometheus/OpenMetrics text by name and labels, whatever order the labels are
// rendered in (prom-client puts `le` first) and with or without an exemplar after the value.
import { request } from 'undici'

/** The /metrics text of `url` (the admin listener's base URL, or a full /metrics URL). */
export async function scrape (url: string): Promise<string> {
  return (await request(url.endsWith('/metrics') ? url : `${url}/metrics`)).body.text()
}

function samples (text: string, name: string, labels: Record<string, string>): number[] {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  const out: number[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const close = line.startsWith(`${name}{`) ? line.indexOf('"}') + 1 : name.length - 1
    const set = [...line.slice(name.length + 1, close).matchAll(/\w+="(?:[^"\\]|\\.)*"/g)].map(m => m[0])
    if (!wanted.every(l => set.includes(l))) continue
    out.push(Number(line.slice(close + 1).trim().split(' ')[0]))
  }
  return out
}

/** The one sample of `name` carrying exactly these labels (others may be present); NaN when there is none. */
export function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  const found = samples(text, name, labels)
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`)
  return found[0] ?? NaN
}

/** The sum of every sample of `name` carrying these labels (0 when there is none). */
export function total (text: string, name: string, labels: Record<string, string> = {}): number {
  return samples(text, name, labels).reduce((a, b) => a + b, 0)
}
