// Prints what a synthesized template would create, by resource type:
// `make synth` runs it on each template in cdk.out.
import { readFileSync } from 'node:fs';

for (const path of process.argv.slice(2)) {
  const resources = Object.values(JSON.parse(readFileSync(path, 'utf8')).Resources ?? {});
  const byType = new Map();
  for (const r of resources) byType.set(r.Type, (byType.get(r.Type) ?? 0) + 1);
  console.log(`${path}: ${resources.length} resources`);
  for (const [type, n] of [...byType].sort()) console.log(`  ${String(n).padStart(3)}  ${type}`);
}
