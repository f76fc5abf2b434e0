// Writes deploy/kubernetes/*.yaml from the generator (`make manifests`; docs/kubernetes.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CHECKED_IN, installYaml } from '../src/kube/manifests.js';

for (const { file, opts } of CHECKED_IN) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, installYaml(opts));
  console.log(`wrote ${file}`);
}
