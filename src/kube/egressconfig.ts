// FelixConfiguration's egress fields → egw's own cluster-scoped EgressConfiguration (docs/kubernetes.md, "The CRDs"):
// Calico OSS's FelixConfiguration has no egressIPSupport, so on a cluster the egress fields live in
// `egressconfigurations.egw.dev/default`. Pure; the fields are the ones validate.ts checks (FELIX_DEFAULTS' keys).
import { FELIX_CONFIGURATION_DEFAULT, FELIX_DEFAULTS, type FelixConfiguration } from '../api/types.js';
import { EGRESS_CONFIGURATION_KIND, EGW_API_GROUP, EGW_API_VERSION } from './crds.js';

export const EGRESS_FIELDS = Object.keys(FELIX_DEFAULTS) as (keyof typeof FELIX_DEFAULTS)[];

export interface EgressConfiguration {
  apiVersion: string;
  kind: typeof EGRESS_CONFIGURATION_KIND;
  metadata: { name: string };
  spec: Partial<typeof FELIX_DEFAULTS>;
}

/**
 * The EgressConfiguration a FelixConfiguration's egress fields map onto, and the fields left behind (Felix's own,
 * which stay Calico's). Only the `default` FelixConfiguration maps: a per-node one (`node.<name>`) is refused.
 */
export function egressConfigurationFrom(fc: FelixConfiguration): { config: EgressConfiguration; otherFields: string[] } {
  if (fc.metadata.name !== FELIX_CONFIGURATION_DEFAULT) {
    throw new Error(`FelixConfiguration ${fc.metadata.name}: only "default" maps onto egw's EgressConfiguration (per-node egress settings are not supported on Kubernetes)`);
  }
  const spec: Record<string, unknown> = {};
  const otherFields: string[] = [];
  for (const [k, v] of Object.entries(fc.spec ?? {})) {
    if ((EGRESS_FIELDS as string[]).includes(k)) spec[k] = v;
    else otherFields.push(k);
  }
  return {
    config: { apiVersion: `${EGW_API_GROUP}/${EGW_API_VERSION}`, kind: EGRESS_CONFIGURATION_KIND, metadata: { name: FELIX_CONFIGURATION_DEFAULT }, spec },
    otherFields: otherFields.sort(),
  };
}
