// What a gateway pod needs to know from the datastore, and the data-plane configuration it implies. Pure: fed with
// resources (list + watch), asked for the desired configuration.
import { namespaceOf, type Resource } from '../api/meta.js';
import { parseIPv4, formatIPv4 } from '../api/ipv4.js';
import {
  ANNOTATION,
  FELIX_CONFIGURATION_DEFAULT,
  FELIX_DEFAULTS,
  type EgressGateway,
  type EgressGatewayFailureDetection,
  type FelixConfiguration,
  type Node,
  type Pod,
} from '../api/types.js';
import { EgressCalculator } from '../calc/index.js';
import type { GatewayDataplaneConfig } from './dataplane.js';
import { podIPv4 } from '../api/pod.js';

/** Kinds the gateway reads. */
export const GATEWAY_KINDS = ['FelixConfiguration', 'Node', 'Namespace', 'EgressGatewayPolicy', 'EgressGateway', 'Pod'] as const;

export const DEFAULT_HEALTH_TIMEOUT_DATASTORE_SECONDS = 90;

export type Desired = { config: GatewayDataplaneConfig; warnings: string[] } | { waiting: string };

export class GatewayModel {
  readonly calc = new EgressCalculator();
  readonly podKey: string;
  private ownPod: Pod | undefined;
  private felix: FelixConfiguration | undefined;
  /** Node name → its InternalIPs. */
  private readonly nodeIPs = new Map<string, string[]>();
  /** `namespace/name` → EgressGateway. */
  private readonly egws = new Map<string, EgressGateway>();

  constructor(
    readonly namespace: string,
    readonly name: string,
  ) {
    this.podKey = `${namespace}/${name}`;
  }

  /** Applies one change; returns false for kinds the gateway does not read. */
  apply(type: 'upsert' | 'delete', obj: Resource): boolean {
    const del = type === 'delete';
    switch (obj.kind) {
      case 'Pod':
        if (namespaceOf(obj) === this.namespace && obj.metadata.name === this.name) this.ownPod = del ? undefined : (obj as Pod);
        break;
      case 'FelixConfiguration':
        if (obj.metadata.name !== FELIX_CONFIGURATION_DEFAULT) return true;
        this.felix = del ? undefined : (obj as FelixConfiguration);
        break;
      case 'Node':
        if (del) this.nodeIPs.delete(obj.metadata.name);
        else {
          const ips: string[] = [];
          for (const a of (obj as Node).status?.addresses ?? []) {
            if (a.type !== 'InternalIP') continue;
            const n = parseIPv4(a.address);
            if (n !== undefined) ips.push(formatIPv4(n));
          }
          this.nodeIPs.set(obj.metadata.name, ips);
        }
        break;
      case 'EgressGateway': {
        const k = `${namespaceOf(obj)}/${obj.metadata.name}`;
        if (del) this.egws.delete(k);
        else this.egws.set(k, obj as EgressGateway);
        return true;
      }
      case 'Namespace':
      case 'EgressGatewayPolicy':
        break;
      default:
        return false;
    }
    if (del) this.calc.remove(obj);
    else this.calc.upsert(obj);
    return true;
  }

  pod(): Pod | undefined {
    return this.ownPod;
  }

  /** The EgressGateway this pod belongs to: named by its `egw.dev/egress-gateway` annotation, else its owner. */
  egressGateway(): EgressGateway | undefined {
    const p = this.ownPod;
    if (!p) return undefined;
    const name = p.metadata.annotations?.[ANNOTATION.gatewayOf] ?? p.metadata.ownerReferences?.find((o) => o.kind === 'EgressGateway')?.name;
    return name === undefined ? undefined : this.egws.get(`${this.namespace}/${name}`);
  }

  /** The failure-detection settings, with defaults. */
  failureDetection(): EgressGatewayFailureDetection {
    const fd = this.egressGateway()?.spec?.egressGatewayFailureDetection;
    const t = fd?.healthTimeoutDataStoreSeconds;
    return {
      ...fd,
      healthTimeoutDataStoreSeconds: typeof t === 'number' && Number.isFinite(t) && t >= 1 ? t : DEFAULT_HEALTH_TIMEOUT_DATASTORE_SECONDS,
    };
  }

  desired(): Desired {
    const p = this.ownPod;
    if (!p) return { waiting: `pod ${this.podKey} is not in the datastore` };
    const ip = podIPv4(p);
    if (!ip) return { waiting: `pod ${this.podKey} has no IPv4 address yet` };
    const warnings: string[] = [];
    if (p.metadata.annotations?.[ANNOTATION.gatewayOf] === undefined) warnings.push(`pod ${this.podKey} has no ${ANNOTATION.gatewayOf} annotation: no client is allowed`);
    const s = this.felix?.spec ?? {};
    const nodes = new Set<string>();
    for (const ips of this.nodeIPs.values()) for (const x of ips) nodes.add(x);
    return {
      config: {
        ownIP: ip,
        vni: s.egressIPVXLANVNI ?? FELIX_DEFAULTS.egressIPVXLANVNI,
        port: s.egressIPVXLANPort ?? FELIX_DEFAULTS.egressIPVXLANPort,
        nodes: [...nodes].sort((a, b) => parseIPv4(a)! - parseIPv4(b)!),
        clients: this.calc.gatewayClients(this.podKey),
      },
      warnings,
    };
  }
}
