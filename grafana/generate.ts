// npm run dashboards: writes grafana/dashboards/*.json from grafana/dashboards.ts. Commit the output;
// test/stack/dashboards.test.ts fails when the files and the source disagree.
import { writeFileSync } from 'node:fs'
import { DASHBOARDS } from './dashboards.ts'

for (const [file, build] of Object.entries(DASHBOARDS)) {
  const url = new URL(`./dashboards/${file}`, import.meta.url)
  writeFileSync(url, JSON.stringify(build(), null, 2) + '\n')
  console.log(`wrote grafana/dashboards/${file}`)
}
