// The lab file: what `egw lab up -f lab.yaml` builds. Parsed with the manifest reader so every problem names the
// file, line and column of the field; unknown fields are errors; defaults as in docs/dataplane.md.
import { readFileSync } from 'node:fs';
import { Checker } from '../api/check.js';
import { cidrContains, cidrsOverlap, formatCidr, formatIPv4, hasHostBits, maskOf, networkOf, parseCidr, parseIPv4, type Cidr } from '../api/ipv4.js';
import { formatPath, parseManifest, type FieldPath, type ManifestProblem } from '../api/manifest.js';

export const LAB_NAME = /^[a-z0-9]{1,8}$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface LabNode {
  name: string;
  labels: Record<string, string>;
  /** Underlay address (router .1, nodes .11, .12, … in file order). */
  ip: string;
}

export interface LabConfig {
  name: string;
  underlay: { cidr: string; prefix: number; mtu: number; router: string };
  nodes: LabNode[];
  external: {
    cidr: string;
    prefix: number;
    /** The router's address on the external network (.1). */
    router: string;
    echo: string;
    restricted: { ip: string; allow: string[] };
    /** Further external networks; the external host answers on `echo` (.10) of each. */
    networks: { cidr: string; echo: string }[];
  };
  podPool: { name: string; cidr: string; blockSize: number };
  /**
   * Where the lab keeps its resources: an SQLite file (default), an etcd server inside the lab, or the stand-in
   * Kubernetes API server inside the lab (every process then on `--datastore kubernetes`).
   */
  datastore: 'sqlite' | 'etcd' | 'kubernetes';
  /** With datastore etcd: the etcd namespace's underlay address (.2). */
  etcd?: { ip: string };
  /** With datastore kubernetes: the API server namespace's underlay address (.2). */
  apiserver?: { ip: string };
  /** How many `egw controller` processes run (controller-1..N). */
  controllers: number;
}

export const LAB_DEFAULTS = {
  underlay: { cidr: '172.31.0.0/24', mtu: 1500 },
  external: { cidr: '198.51.100.0/24', echoHost: 10, restrictedHost: 20, networks: ['203.0.113.0/24'] },
  podPool: { name: 'default-ipv4-ippool', cidr: '10.244.0.0/16', blockSize: 26 },
  firstNodeHost: 11,
  /** The etcd server's (datastore: etcd) or the API server's (datastore: kubernetes) host number on the underlay. */
  etcdHost: 2,
  datastore: 'sqlite',
  /** Two, as a Deployment with 2 replicas: one leads, the other takes over (docs/behaviour.md §4.1). */
  controllers: 2,
  maxControllers: 9,
} as const;

export class LabFileError extends Error {
  constructor(readonly problems: ManifestProblem[]) {
    super(problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`).join('\n'));
    this.name = 'LabFileError';
  }
}

/** Reads and checks a lab file; throws LabFileError listing every problem. */
export function loadLabFile(file: string): LabConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LabFileError([{ file, line: 1, column: 1, message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseLabFile(text, file);
}

/** Parses lab-file text; throws LabFileError listing every problem with file:line:column. */
export function parseLabFile(text: string, file = '<lab>'): LabConfig {
  const parsed = parseManifest(text, file);
  if (parsed.problems.length) throw new LabFileError(parsed.problems);
  if (parsed.objects.length !== 1) {
    throw new LabFileError([{ file, line: 1, column: 1, message: parsed.objects.length ? 'a lab file holds one document' : 'empty lab file' }]);
  }
  const raw = parsed.objects[0];
  const c = new Checker();
  const cfg = checkLab(c, raw.value);
  if (c.errors.length || !cfg) {
    throw new LabFileError(
      c.errors.map((p) => {
        const pos = raw.locate(p.path, p.atKey);
        return { file, line: pos.line, column: pos.column, message: `${p.path.length ? formatPath(p.path) : '(top)'}: ${p.message}` };
      }),
    );
  }
  return cfg;
}

function cidrField(c: Checker, v: unknown, path: FieldPath, dflt: string): Cidr | undefined {
  const s = c.string(v, path) ?? (v === undefined || v === null ? dflt : undefined);
  if (s === undefined) return undefined;
  const cidr = parseCidr(s);
  if (!cidr) return c.error(path, `${JSON.stringify(s)} is not an IPv4 CIDR such as 10.0.0.0/24`);
  if (hasHostBits(cidr)) return c.error(path, `${s} has host bits set; did you mean ${formatCidr(networkOf(cidr))}?`);
  return cidr;
}

function ipField(c: Checker, v: unknown, path: FieldPath, dflt: number | undefined, within: Cidr | undefined): number | undefined {
  const s = c.string(v, path);
  let ip: number | undefined;
  if (s !== undefined) {
    ip = parseIPv4(s);
    if (ip === undefined) return c.error(path, `${JSON.stringify(s)} is not an IPv4 address`);
  } else if (v === undefined || v === null) {
    ip = dflt;
  }
  if (ip !== undefined && within && !usableHost(within, ip)) {
    return c.error(path, `${formatIPv4(ip)} is not a usable host address of ${formatCidr(within)}`);
  }
  return ip;
}

function usableHost(c: Cidr, ip: number): boolean {
  if (!cidrContains(c, ip)) return false;
  if (c.prefix >= 31) return true;
  const host = (ip & ~maskOf(c.prefix)) >>> 0;
  return host !== 0 && host !== (~maskOf(c.prefix) >>> 0);
}

function checkLab(c: Checker, v: unknown): LabConfig | undefined {
  const top = c.object(v, [], ['name', 'underlay', 'nodes', 'external', 'podPool', 'datastore', 'controllers']);
  if (!top) return c.error([], 'a lab file is a mapping with name, nodes, and optionally underlay, external, podPool, datastore, controllers');

  // name
  let name: string | undefined;
  if (c.required(top, 'name', [])) {
    name = c.string(top.name, ['name']);
    if (name !== undefined && !LAB_NAME.test(name)) c.error(['name'], `${JSON.stringify(name)}: a lab name is 1-8 characters [a-z0-9]`);
  }

  // underlay
  const u = c.object(top.underlay, ['underlay'], ['cidr', 'mtu']) ?? {};
  const underlay = cidrField(c, u.cidr, ['underlay', 'cidr'], LAB_DEFAULTS.underlay.cidr);
  const mtu = c.int(u.mtu, ['underlay', 'mtu'], { min: 1280, max: 9000 }) ?? (u.mtu === undefined ? LAB_DEFAULTS.underlay.mtu : undefined);
  if (underlay && underlay.prefix > 29) c.error(['underlay', 'cidr'], 'the underlay needs at least a /29');

  // nodes
  const nodes: LabNode[] = [];
  const seen = new Map<string, number>();
  if (c.required(top, 'nodes', [])) {
    const arr = c.array(top.nodes, ['nodes']);
    if (arr && arr.length === 0) c.error(['nodes'], 'a lab needs at least one node');
    arr?.forEach((item, i) => {
      const p: FieldPath = ['nodes', i];
      const n = c.object(item, p, ['name', 'labels']);
      if (!n) return;
      if (!c.required(n, 'name', p)) return;
      const nodeName = c.string(n.name, [...p, 'name']);
      const labels = c.stringMap(n.labels, [...p, 'labels']) ?? {};
      if (nodeName === undefined) return;
      if (!DNS1123_LABEL.test(nodeName) || nodeName.length > 40) {
        c.error([...p, 'name'], `${JSON.stringify(nodeName)}: a node name is a DNS label (lower-case letters, digits, '-'), at most 40 characters`);
        return;
      }
      if (seen.has(nodeName)) {
        c.error([...p, 'name'], `duplicate node name ${nodeName} (also nodes[${seen.get(nodeName)}])`);
        return;
      }
      seen.set(nodeName, i);
      let ip = '';
      if (underlay) {
        const addr = (underlay.addr + LAB_DEFAULTS.firstNodeHost + i) >>> 0;
        if (!usableHost(underlay, addr)) c.error([...p, 'name'], `no underlay address left for this node in ${formatCidr(underlay)} (nodes use .${LAB_DEFAULTS.firstNodeHost} and up)`);
        else ip = formatIPv4(addr);
      }
      nodes.push({ name: nodeName, labels: { ...labels, 'kubernetes.io/hostname': nodeName }, ip });
    });
  }

  // external
  const e = c.object(top.external, ['external'], ['cidr', 'echo', 'restricted', 'networks']) ?? {};
  const ext = cidrField(c, e.cidr, ['external', 'cidr'], LAB_DEFAULTS.external.cidr);
  if (ext && ext.prefix > 27) c.error(['external', 'cidr'], 'the external network needs at least a /27');
  const extRouter = ext ? (ext.addr + 1) >>> 0 : undefined;
  const echo = ipField(c, e.echo, ['external', 'echo'], ext ? (ext.addr + LAB_DEFAULTS.external.echoHost) >>> 0 : undefined, ext);
  const r = c.object(e.restricted, ['external', 'restricted'], ['ip', 'allow']) ?? {};
  const restricted = ipField(c, r.ip, ['external', 'restricted', 'ip'], ext ? (ext.addr + LAB_DEFAULTS.external.restrictedHost) >>> 0 : undefined, ext);
  if (echo !== undefined && echo === extRouter) c.error(['external', 'echo'], `${formatIPv4(echo)} is the router's address`);
  if (restricted !== undefined && restricted === extRouter) c.error(['external', 'restricted', 'ip'], `${formatIPv4(restricted)} is the router's address`);
  if (restricted !== undefined && restricted === echo) c.error(['external', 'restricted', 'ip'], 'must differ from external.echo');
  const allow: string[] = [];
  const allowArr = c.array(r.allow, ['external', 'restricted', 'allow']);
  allowArr?.forEach((a, i) => {
    const cidr = cidrField(c, a, ['external', 'restricted', 'allow', i], '');
    if (cidr) allow.push(formatCidr(cidr));
  });
  const networks: { cidr: string; echo: string }[] = [];
  const netArr = e.networks === undefined ? [...LAB_DEFAULTS.external.networks] : c.array(e.networks, ['external', 'networks']);
  const taken: { cidr: Cidr; path: FieldPath; what: string }[] = [];
  if (underlay) taken.push({ cidr: underlay, path: ['underlay', 'cidr'], what: 'underlay.cidr' });
  if (ext) taken.push({ cidr: ext, path: ['external', 'cidr'], what: 'external.cidr' });
  netArr?.forEach((n, i) => {
    const path: FieldPath = ['external', 'networks', i];
    const cidr = cidrField(c, n, path, '');
    if (!cidr) return;
    if (cidr.prefix > 28) return void c.error(path, 'an external network needs at least a /28 (the host takes .10)');
    const clash = taken.find((t) => cidrsOverlap(t.cidr, cidr));
    if (clash) return void c.error(path, `${formatCidr(cidr)} overlaps ${clash.what}`);
    taken.push({ cidr, path, what: formatPath(path) });
    networks.push({ cidr: formatCidr(cidr), echo: formatIPv4((cidr.addr + 10) >>> 0) });
  });
  if (underlay && ext && cidrsOverlap(underlay, ext)) c.error(['external', 'cidr'], `${formatCidr(ext)} overlaps underlay.cidr`);

  // podPool
  const pp = c.object(top.podPool, ['podPool'], ['name', 'cidr', 'blockSize']) ?? {};
  const poolName = c.string(pp.name, ['podPool', 'name'], { nonEmpty: true }) ?? (pp.name === undefined ? LAB_DEFAULTS.podPool.name : undefined);
  if (poolName !== undefined && (poolName.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(poolName))) {
    c.error(['podPool', 'name'], `${JSON.stringify(poolName)} is not a valid IPPool name (DNS subdomain)`);
  }
  const poolCidr = cidrField(c, pp.cidr, ['podPool', 'cidr'], LAB_DEFAULTS.podPool.cidr);
  const blockSize = c.int(pp.blockSize, ['podPool', 'blockSize'], { min: 20, max: 32 }) ?? (pp.blockSize === undefined ? LAB_DEFAULTS.podPool.blockSize : undefined);
  if (poolCidr && blockSize !== undefined && poolCidr.prefix > blockSize) {
    c.error(['podPool', 'blockSize'], `the pool prefix /${poolCidr.prefix} is longer than the block size ${blockSize}`);
  }
  if (poolCidr) {
    const clash = taken.find((t) => cidrsOverlap(t.cidr, poolCidr));
    if (clash) c.error(['podPool', 'cidr'], `${formatCidr(poolCidr)} overlaps ${clash.what}`);
    if (cidrsOverlap(poolCidr, { addr: 0xa9fe0000, prefix: 16 })) c.error(['podPool', 'cidr'], 'must not be link-local (169.254.0.0/16)');
  }

  // datastore, controllers
  let datastore: LabConfig['datastore'] = LAB_DEFAULTS.datastore;
  if (top.datastore !== undefined && top.datastore !== null) {
    const d = c.string(top.datastore, ['datastore']);
    if (d === 'sqlite' || d === 'etcd' || d === 'kubernetes') datastore = d;
    else if (d !== undefined) c.error(['datastore'], `${JSON.stringify(d)}: expected sqlite (the default), etcd or kubernetes`);
  }
  const controllers =
    c.int(top.controllers, ['controllers'], { min: 1, max: LAB_DEFAULTS.maxControllers }) ?? (top.controllers === undefined || top.controllers === null ? LAB_DEFAULTS.controllers : undefined);
  const etcdIP = underlay ? (underlay.addr + LAB_DEFAULTS.etcdHost) >>> 0 : undefined;

  if (c.errors.length) return undefined;
  return {
    name: name!,
    underlay: { cidr: formatCidr(underlay!), prefix: underlay!.prefix, mtu: mtu!, router: formatIPv4((underlay!.addr + 1) >>> 0) },
    nodes,
    external: {
      cidr: formatCidr(ext!),
      prefix: ext!.prefix,
      router: formatIPv4(extRouter!),
      echo: formatIPv4(echo!),
      restricted: { ip: formatIPv4(restricted!), allow },
      networks,
    },
    podPool: { name: poolName!, cidr: formatCidr(poolCidr!), blockSize: blockSize! },
    datastore,
    ...(datastore === 'etcd' ? { etcd: { ip: formatIPv4(etcdIP!) } } : {}),
    ...(datastore === 'kubernetes' ? { apiserver: { ip: formatIPv4(etcdIP!) } } : {}),
    controllers: controllers!,
  };
}
