// Writes helm/<chart>/values.schema.json from each chart's values.yaml:
//   node --import tsx test/src/helm/generate-schema.ts
// The helm tests fail when a checked-in schema differs from what this writes.
import { writeFileSync } from 'node:fs';
import { charts } from './helm.js';
import { schemaTextFor } from './schema.js';

for (const chart of charts) {
  writeFileSync(`${chart.dir}/values.schema.json`, await schemaTextFor(chart.dir, chart.title));
  console.log(`wrote ${chart.dir}/values.schema.json`);
}
