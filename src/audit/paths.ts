// Where flow records live (docs/audit.md, "Files"): one root, one directory per reporting process under it.
//   <root>/gateway-<namespace>.<pod>/   a gateway pod's records
//   <root>/node-<node>/                 a node agent's records and its pods' IP history
// The root is --flow-dir, else EGW_FLOW_DIR, else /var/log/egw/flows (a hostPath on Kubernetes, tailed by Fluent Bit
// or Vector).
import { join, resolve } from 'node:path';
import type { Reporter } from './types.js';

export const DEFAULT_FLOW_DIR = '/var/log/egw/flows';

export function flowRoot(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.EGW_FLOW_DIR ?? DEFAULT_FLOW_DIR);
}

/** `gateway-<ns>.<pod>` or `node-<node>`: Kubernetes names hold no `/`, and `.` cannot start a namespace. */
export function reporterDirName(reporter: Reporter, name: string): string {
  return reporter === 'gateway' ? `gateway-${name.replace('/', '.')}` : `node-${name}`;
}

export function reporterDir(root: string, reporter: Reporter, name: string): string {
  return join(root, reporterDirName(reporter, name));
}
