// The `egw` command, kubectl-like. Thin: parsing arguments and printing; the work is in api and datastore.
import { normalizeDatastore } from '../lab/labstore.js';
import { PartialWriteError, writeOps } from '../datastore/batch.js';
import { Command, CommanderError, Option } from 'commander';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify as toYaml } from 'yaml';
import {
  namespaceOf,
  parseNamespacedName,
  formatProblems,
  keyOf,
  keyString,
  KINDS,
  parseIPv4,
  resolveKind,
  validateManifests,
  type KindInfo,
  type ManifestFile,
  type Resource,
} from '../api/index.js';
import { openStore, defaultDatastoreSpec, parseDatastoreSpec, ETCD_TLS_SOURCES, type OpenStoreOptions } from '../datastore/open.js';
import { addProcessCommands } from './processes.js';
import { addFlowCommands } from './flows.js';
import { addDashboardCommand } from './dashboard.js';
import { addManifestsCommand } from './manifests.js';
import type { Store, TxnOp } from '../datastore/types.js';
import { StoreError } from '../datastore/types.js';
import { runSelectorCheck } from '../selector/check.js';
import { EgressCalculator } from '../calc/index.js';
import { formatExplanation } from './explain.js';
import { describeObject, effectiveEgressText, formatGatewayStatus, formatLeader, gatewayStatusView, printTable } from './print.js';
import { deletePodGracefully } from '../controller/delete.js';
import { canonicalJson } from '../api/apps.js';
import type { Deployment, Pod, ReplicaSet } from '../api/types.js';
import { updateWithRetry } from '../datastore/retry.js';
import { dependentsOf } from '../lab/rollout.js';

/** Annotations the lab's Deployment controller writes (src/lab/rollout.ts); apply keeps them. */
const CONTROLLER_ANNOTATION_PREFIX = 'deployment.kubernetes.io/';
import { readLeader } from '../controller/leader.js';

/** An error meant for the user: printed as one line, no stack trace. */
export class UsageError extends Error {}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  stdin: NodeJS.ReadableStream;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  stdin: process.stdin,
};

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let exitCode = 0;
  const program = new Command('egw')
    .description('egress gateways for Kubernetes: fixed, auditable source IPs for traffic that leaves the cluster')
    .addOption(new Option('--datastore <spec>', `datastore: sqlite:PATH, memory:, etcd://HOST:PORT[,HOST:PORT...][/PREFIX], kubernetes: or kubernetes:KUBECONFIG (default: $EGW_DATASTORE or ${defaultDatastoreSpec()})`))
    .addOption(new Option('--etcd-ca <file>', `etcd: CA certificate (PEM) the server's certificate must chain to; the endpoints are then https (default: $${ETCD_TLS_SOURCES.ca.env})`))
    .addOption(new Option('--etcd-cert <file>', `etcd: client certificate (PEM), with --etcd-key (default: $${ETCD_TLS_SOURCES.cert.env})`))
    .addOption(new Option('--etcd-key <file>', `etcd: the client certificate's unencrypted private key (PEM) (default: $${ETCD_TLS_SOURCES.key.env})`))
    .addOption(new Option('--kubeconfig <file>', 'kubernetes: the kubeconfig file (default: the in-cluster service account)'))
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  const withStore = async <T>(fn: (store: Store) => Promise<T>, open: Pick<OpenStoreOptions, 'kubeViews'> = {}): Promise<T> => {
    const o = program.opts();
    const store = await openStore(o.datastore, { etcdTls: { ca: o.etcdCa, cert: o.etcdCert, key: o.etcdKey }, kubeconfig: o.kubeconfig, ...open });
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  };

  program
    .command('apply')
    .description('create or update resources from files, a directory or stdin; all are validated first, and nothing is applied if any is bad')
    .requiredOption('-f, --filename <path...>', 'file, directory or - for stdin')
    .option('-R, --recursive', 'read directories recursively')
    .option('-n, --namespace <ns>', 'namespace for namespaced objects that name none', 'default')
    .option('--dry-run', 'validate and show what would change, without changing anything')
    .action(async (opts) => {
      exitCode = await withStore((store) => applyCommand(store, opts, io));
    });

  program
    .command('validate')
    .description('check manifests without applying them (references are checked against the datastore)')
    .requiredOption('-f, --filename <path...>', 'file, directory or - for stdin')
    .option('-R, --recursive', 'read directories recursively')
    .action(async (opts) => {
      exitCode = await withStore(async (store) => {
        const files = await readInputs(opts.filename, !!opts.recursive, io);
        const existing = await snapshot(store);
        const result = validateManifests(files, existing);
        if (result.warnings.length) io.err(formatProblems(result.warnings).replace(/^/gm, 'warning: ') + '\n');
        if (result.errors.length) {
          io.err(formatProblems(result.errors) + '\n');
          return 1;
        }
        io.out(`${result.resources.length} object${result.resources.length === 1 ? '' : 's'} valid\n`);
        return 0;
      });
    });

  program
    .command('get')
    .description('list resources of a kind (egw get egressgateways, egw get egw red -o yaml)')
    .argument('<kind>', `one of: ${KINDS.map((k) => k.plural).join(', ')} (short forms work too)`)
    .argument('[name]', 'one object')
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds)', 'default')
    .option('-A, --all-namespaces', 'every namespace')
    .option('-l, --selector <labels>', 'label selector (a=b,c!=d)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['wide', 'yaml', 'json', 'name']))
    .action(async (kindArg: string, name: string | undefined, opts) => {
      const kind = kindOrThrow(kindArg);
      exitCode = await withStore(async (store) => {
        let items: Resource[];
        if (name) {
          const obj = await store.get({ kind: kind.kind, namespace: kind.namespaced ? opts.namespace : '', name });
          if (!obj) throw new UsageError(`${kind.plural} "${name}" not found${kind.namespaced ? ` in namespace ${opts.namespace}` : ''}`);
          items = [obj];
        } else {
          const res = await store.list(kind.kind, {
            namespace: kind.namespaced && !opts.allNamespaces ? opts.namespace : undefined,
            labelSelector: opts.selector,
          });
          items = res.items;
        }
        let egress: ((r: Resource) => string) | undefined;
        if (kind.kind === 'Pod' && opts.output === 'wide') {
          // The effective egress, by the calculator's one resolution: the pods, their namespaces, the policies
          // and FelixConfiguration decide (docs/behaviour.md §2).
          const calc = new EgressCalculator();
          for (const k of ['FelixConfiguration', 'Namespace', 'EgressGatewayPolicy']) for (const r of (await store.list(k)).items) calc.upsert(r);
          for (const r of items) calc.upsert(r);
          egress = (r) => effectiveEgressText(calc.egressOf(namespaceOf(r), r.metadata.name));
        }
        printObjects(items, kind, opts.output, !!opts.allNamespaces, !!name, io, egress);
        return 0;
      });
    });

  program
    .command('describe')
    .description('show one resource in detail')
    .argument('<kind>')
    .argument('<name>')
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds)', 'default')
    .action(async (kindArg: string, name: string, opts) => {
      const kind = kindOrThrow(kindArg);
      exitCode = await withStore(async (store) => {
        const obj = await store.get({ kind: kind.kind, namespace: kind.namespaced ? opts.namespace : '', name });
        if (!obj) throw new UsageError(`${kind.plural} "${name}" not found${kind.namespaced ? ` in namespace ${opts.namespace}` : ''}`);
        io.out(describeObject(obj));
        return 0;
      });
    });

  program
    .command('delete')
    .description('delete resources by kind and name, or those a file defines')
    .argument('[kind]')
    .argument('[names...]')
    .option('-f, --filename <path...>', 'delete the objects these files define')
    .option('-n, --namespace <ns>', 'namespace (namespaced kinds)', 'default')
    .option('--ignore-not-found', 'do not fail when an object does not exist')
    .option(
      '--grace-period <seconds>',
      'pods: seconds the pod keeps running (its drain window) before it is stopped; default its terminationGracePeriodSeconds, else 30. 0 needs --force',
      parseGrace,
    )
    .option('--now', 'pods: stop at once (grace period 1)')
    .option('--force', 'pods: with --grace-period 0 (the default with --force), remove at once without waiting for the pod to stop')
    .addOption(new Option('--cascade <mode>', 'deployments, replicasets: background deletes what they own too (their ReplicaSets, their pods, gracefully); orphan leaves it').choices(['background', 'orphan']).default('background'))
    .action(async (kindArg: string | undefined, names: string[], opts) => {
      exitCode = await withStore((store) => deleteCommand(store, kindArg, names, opts, io));
    });

  program
    .command('scale')
    .description('set spec.replicas of a Deployment, ReplicaSet or EgressGateway (egw scale deploy/web --replicas 5)')
    .argument('<target...>', 'KIND/NAME, or KIND NAME')
    .requiredOption('--replicas <n>', 'the new number of replicas', parseReplicas)
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .action(async (target: string[], opts) => {
      exitCode = await withStore((store) => scaleCommand(store, target, opts, io));
    });

  program
    .command('status')
    .description('the leading controller, and every EgressGateway at a glance: ready/desired, conditions, and per gateway pod its node, IP, health and clients')
    .option('-n, --namespace <ns>', 'only this namespace (default: every namespace)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts) => {
      exitCode = await withStore(async (store) => {
        const items = (await store.list('EgressGateway', { namespace: opts.namespace })).items.sort(
          (a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name),
        );
        const views = items.map(gatewayStatusView);
        const leader = await readLeader(store);
        if (opts.output === 'json') {
          io.out(JSON.stringify({ controller: { leader: leader ?? null }, gateways: views }, null, 2) + '\n');
          return 0;
        }
        io.out(formatLeader(leader));
        if (views.length === 0) {
          io.err(`No EgressGateways found${opts.namespace ? ` in namespace ${opts.namespace}` : ''}.\n`);
          return 0;
        }
        io.out('\n' + formatGatewayStatus(views));
        return 0;
      });
    });

  program
    .command('explain')
    .description('which gateway a pod would use for a destination, and why')
    .requiredOption('--pod <ns/name>', 'the client pod')
    .requiredOption('--dst <ip>', 'the destination IPv4 address')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts) => {
      exitCode = await withStore(async (store) => {
        const { namespace: ns, name } = parseNamespacedName(opts.pod);
        if (parseIPv4(opts.dst) === undefined) throw new UsageError(`--dst: "${opts.dst}" is not an IPv4 address`);
        if (!(await store.get({ kind: 'Pod', namespace: ns, name }))) throw new UsageError(`pod ${ns}/${name} not found`);
        const calc = new EgressCalculator();
        for (const k of KINDS) for (const r of (await store.list(k.kind)).items) calc.upsert(r);
        const e = calc.explain(ns, name, opts.dst);
        const text = opts.output === 'json' ? JSON.stringify(e, null, 2) : formatExplanation(e);
        io.out(text.endsWith('\n') ? text : text + '\n');
        return 0;
      });
    });

  addProcessCommands(program, {
    withStore,
    datastoreSpec: () => {
      const spec = program.opts().datastore ?? (process.env.EGW_DATASTORE || defaultDatastoreSpec());
      const parsed = parseDatastoreSpec(spec);
      if (parsed.scheme === 'memory') throw new UsageError(`the lab's processes share one datastore; ${spec} cannot be shared, use sqlite:PATH (or a lab on etcd's etcd://…, a lab on Kubernetes' kubernetes:KUBECONFIG)`);
      return normalizeDatastore(spec);
    },
    datastoreGiven: () => {
      const flag = program.opts().datastore as string | undefined;
      if (flag !== undefined) return { spec: flag, from: 'flag' as const };
      return process.env.EGW_DATASTORE ? { spec: process.env.EGW_DATASTORE, from: 'env' as const } : undefined;
    },
    setExitCode: (code) => (exitCode = code),
    out: io.out,
    err: io.err,
  });

  addFlowCommands(program, {
    out: io.out,
    err: io.err,
    setExitCode: (code) => (exitCode = code),
    datastore: () => program.opts().datastore as string | undefined,
  });

  addDashboardCommand(program, {
    withStore,
    datastore: () => program.opts().datastore as string | undefined,
    out: io.out,
    err: io.err,
    setExitCode: (code) => (exitCode = code),
  });

  addManifestsCommand(program, io.out, (m) => { throw new UsageError(m); });

  const selector = program.command('selector').description('the Calico selector engine');
  selector
    .command('check')
    .description('read JSON lines {"selector": "...", "labels": {...}} on stdin; write {"canonical", "matches"} or {"error"} per line')
    .action(async () => {
      const out = new Writable({ write: (chunk, _enc, done) => (io.out(String(chunk)), done()) });
      exitCode = await runSelectorCheck(io.stdin, out);
    });

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError || e instanceof StoreError) {
      io.err(`error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

function parseReplicas(v: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`--replicas: "${v}" is not a whole number ≥ 0`);
  return Number(v);
}

function parseGrace(v: string): number {
  if (!/^-?\d+$/.test(v)) throw new UsageError(`--grace-period: "${v}" is not a whole number of seconds`);
  return Number(v);
}

function kindOrThrow(typed: string): KindInfo {
  const k = resolveKind(typed);
  if (!k) throw new UsageError(`unknown resource type "${typed}"; known: ${KINDS.map((k) => k.plural).join(', ')}`);
  return k;
}

/** Reads -f arguments: files, directories (*.yaml, *.yml, *.json, sorted) and `-` for stdin. */
async function readInputs(paths: string[], recursive: boolean, io: Io): Promise<ManifestFile[]> {
  const out: ManifestFile[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push({ file: '<stdin>', text: await readAll(io.stdin) });
      continue;
    }
    let st;
    try {
      st = await stat(p);
    } catch {
      throw new UsageError(`${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const found = await listManifests(p, recursive);
      if (found.length === 0) throw new UsageError(`${p}: no .yaml, .yml or .json files in this directory`);
      for (const f of found) out.push({ file: f, text: await readFile(f, 'utf8') });
    } else {
      out.push({ file: p, text: await readFile(p, 'utf8') });
    }
  }
  return out;
}

async function listManifests(dir: string, recursive: boolean): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  const out: string[] = [];
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory() && recursive) out.push(...(await listManifests(full, true)));
    else if (e.isFile() && /\.(ya?ml|json)$/i.test(e.name)) out.push(full);
  }
  return out;
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

/** Everything stored, by kind, for the checks that look across objects. */
async function snapshot(store: Store) {
  const byKind = new Map<string, Resource[]>();
  for (const k of KINDS) byKind.set(k.kind, (await store.list(k.kind)).items);
  return { list: (kind: string) => byKind.get(kind) ?? [] };
}

function userIdentity(info: KindInfo, r: Resource): string {
  const group = info.apiVersion.includes('/') ? '.' + info.apiVersion.split('/')[0] : '';
  return `${info.kind.toLowerCase()}${group}/${r.metadata.name}`;
}

/** The parts a user writes; two objects equal here need no write. */
function userContent(r: Resource): string {
  const { labels, annotations, ownerReferences, finalizers } = r.metadata;
  return JSON.stringify([labels ?? {}, annotations ?? {}, ownerReferences ?? [], finalizers ?? [], r.spec ?? null, r.status ?? null]);
}

async function applyCommand(store: Store, opts: { filename: string[]; recursive?: boolean; namespace: string; dryRun?: boolean }, io: Io): Promise<number> {
  const files = await readInputs(opts.filename, !!opts.recursive, io);
  const existing = await snapshot(store);
  const result = validateManifests(files, existing, { defaultNamespace: opts.namespace });
  if (result.warnings.length) io.err(formatProblems(result.warnings).replace(/^/gm, 'warning: ') + '\n');
  if (result.errors.length) {
    io.err(formatProblems(result.errors) + '\n');
    io.err(`error: nothing applied (${result.errors.length} problem${result.errors.length === 1 ? '' : 's'})\n`);
    return 1;
  }
  const ops: TxnOp[] = [];
  const lines: string[] = [];
  for (const { resource } of result.resources) {
    const info = KINDS.find((k) => k.kind === resource.kind)!;
    const current = existing.list(resource.kind).find((r) => keyString(keyOf(r)) === keyString(keyOf(resource)));
    // Status belongs to whoever runs the object (controller, kubelet): a manifest without one keeps the current.
    if (current && resource.status === undefined && current.status !== undefined) resource.status = current.status;
    // A deletion in progress cannot be undone by applying (Kubernetes: deletionTimestamp is immutable once set).
    if (current?.metadata.deletionTimestamp) {
      resource.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      if (current.metadata.deletionGracePeriodSeconds !== undefined) resource.metadata.deletionGracePeriodSeconds = current.metadata.deletionGracePeriodSeconds;
      io.err(`warning: ${userIdentity(info, resource)} is terminating (until ${current.metadata.deletionTimestamp}); applying does not stop that\n`);
    }
    if (info.generation) keepControllerFields(resource, current);
    const verdict = !current ? 'created' : userContent(current) === userContent(resource) ? 'unchanged' : 'configured';
    if (verdict !== 'unchanged') {
      if (current) resource.metadata.resourceVersion = current.metadata.resourceVersion;
      ops.push(current ? { op: 'update', object: resource } : { op: 'create', object: resource });
    }
    lines.push(`${userIdentity(info, resource)} ${verdict}${opts.dryRun ? ' (dry run)' : ''}`);
  }
  if (!opts.dryRun && ops.length) {
    try {
      await writeOps(store, ops);
    } catch (e) {
      if (e instanceof PartialWriteError) throw new UsageError(`partly applied: ${e.message}; fix that and run apply again`);
      if (e instanceof StoreError && e.code === 'Conflict') {
        throw new UsageError(`nothing applied: an object changed while applying (${e.message}); run apply again`);
      }
      throw e;
    }
  }
  io.out(lines.join('\n') + '\n');
  return 0;
}

/**
 * For kinds whose metadata.generation counts spec changes (KindInfo.generation): 1 when created, one more for each
 * change of the spec; and the annotations their controllers write (deployment.kubernetes.io/…) stay, as kubectl
 * apply's merge keeps them.
 */
function keepControllerFields(resource: Resource, current: Resource | undefined): void {
  const gen = current?.metadata.generation ?? (current ? 1 : 0);
  resource.metadata.generation = !current ? 1 : canonicalJson(current.spec ?? null) === canonicalJson(resource.spec ?? null) ? gen : gen + 1;
  for (const [k, v] of Object.entries(current?.metadata.annotations ?? {})) {
    if (k.startsWith(CONTROLLER_ANNOTATION_PREFIX) && resource.metadata.annotations?.[k] === undefined) resource.metadata.annotations = { ...resource.metadata.annotations, [k]: v };
  }
}

async function scaleCommand(store: Store, target: string[], opts: { replicas: number; namespace: string }, io: Io): Promise<number> {
  const [kindText, nameArg] = target.length === 1 && target[0].includes('/') ? (target[0].split('/', 2) as [string, string]) : [target[0], target[1]];
  if (!kindText || !nameArg || target.length > 2 || (target.length === 2 && target[0].includes('/'))) throw new UsageError('usage: egw scale KIND/NAME --replicas N (or KIND NAME)');
  const info = kindOrThrow(kindText);
  if (!['Deployment', 'ReplicaSet', 'EgressGateway'].includes(info.kind)) throw new UsageError(`${info.plural} cannot be scaled; deployments, replicasets and egressgateways can`);
  const key = { kind: info.kind, namespace: opts.namespace, name: nameArg };
  let found = false;
  await updateWithRetry(store, key, (cur) => {
    found = !!cur;
    if (!cur) return undefined;
    const spec = cur.spec as { replicas?: number };
    if (spec.replicas === opts.replicas) return undefined;
    cur.spec = { ...spec, replicas: opts.replicas };
    if (info.generation) cur.metadata.generation = (cur.metadata.generation ?? 1) + 1;
    return cur;
  });
  if (!found) throw new UsageError(`${info.plural} "${nameArg}" not found in namespace ${opts.namespace}`);
  io.out(`${userIdentity(info, { metadata: { name: nameArg } } as Resource)} scaled\n`);
  return 0;
}

/** kubectl's name for an object in delete output: `pod "x"`, `ippool.projectcalico.org "x"`. */
function deleteIdentity(info: KindInfo, name: string): string {
  const group = info.apiVersion.includes('/') ? '.' + info.apiVersion.split('/')[0] : '';
  return `${info.kind.toLowerCase()}${group} "${name}"`;
}

async function deleteCommand(
  store: Store,
  kindArg: string | undefined,
  names: string[],
  opts: { filename?: string[]; namespace: string; ignoreNotFound?: boolean; gracePeriod?: number; now?: boolean; force?: boolean; cascade?: string },
  io: Io,
): Promise<number> {
  // kubectl's rules: a negative grace means "the pod's own"; --now is 1; 0 without --force becomes 1; --force alone is 0.
  let grace = opts.gracePeriod !== undefined && opts.gracePeriod >= 0 ? opts.gracePeriod : undefined;
  if (opts.now) {
    if (grace !== undefined) throw new UsageError('--now and --grace-period cannot be given together');
    grace = 1;
  }
  if (grace === 0 && !opts.force) grace = 1;
  if (opts.force && grace === undefined) grace = 0;
  const immediate = !!opts.force && grace === 0;

  const targets: { info: KindInfo; key: { kind: string; namespace: string; name: string } }[] = [];
  if (opts.filename) {
    if (kindArg) throw new UsageError('give either -f FILE or KIND NAME, not both');
    const files = await readInputs(opts.filename, false, io);
    // Deleting needs only the identities: references to other objects are not checked.
    const result = validateManifests(files, { list: () => [] }, { defaultNamespace: opts.namespace, crossChecks: false });
    if (result.errors.length) {
      io.err(formatProblems(result.errors) + '\n');
      return 1;
    }
    for (const { resource } of result.resources) targets.push({ info: resolveKind(resource.kind)!, key: keyOf(resource) });
  } else {
    if (!kindArg || names.length === 0) throw new UsageError('usage: egw delete KIND NAME... or egw delete -f FILE');
    const info = kindOrThrow(kindArg);
    for (const name of names) targets.push({ info, key: { kind: info.kind, namespace: info.namespaced ? opts.namespace : '', name } });
  }
  const present: (typeof targets[number] & { obj: Resource })[] = [];
  for (const t of targets) {
    const obj = await store.get(t.key);
    if (obj) present.push({ ...t, obj });
    else if (!opts.ignoreNotFound) throw new UsageError(`${t.info.plural} "${t.key.name}" not found${t.info.namespaced ? ` in namespace ${t.key.namespace}` : ''}; nothing deleted`);
  }
  // Other kinds go in one transaction; pods one by one, gracefully (deletePodGracefully: a scheduled pod drains
  // until its deletionTimestamp and its kubelet removes it then).
  const others = present.filter((t) => t.info.kind !== 'Pod');
  if (others.length) {
    try {
      await writeOps(store, others.map((t) => ({ op: 'delete', key: t.key })));
    } catch (e) {
      if (e instanceof PartialWriteError) throw new UsageError(`partly deleted: ${e.message}`);
      throw e;
    }
  }
  if (immediate && present.some((t) => t.info.kind === 'Pod')) {
    io.err('warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.\n');
  }
  for (const t of present) {
    if (t.info.kind === 'Pod') await deletePodGracefully(store, { namespace: t.key.namespace, name: t.key.name }, { gracePeriodSeconds: grace });
    io.out(`${deleteIdentity(t.info, t.key.name)} ${immediate && t.info.kind === 'Pod' ? 'force deleted' : 'deleted'}\n`);
  }
  // Cascade (kubectl's default, background): what a Deployment or ReplicaSet owns goes too — its ReplicaSets at
  // once, its pods gracefully. The lab's kcm collects anything left over (src/lab/kcm.ts).
  const owners = opts.cascade === 'orphan' ? [] : present.filter((t) => t.info.kind === 'Deployment' || t.info.kind === 'ReplicaSet');
  for (const t of owners) {
    const rss = (await store.list('ReplicaSet', { namespace: t.key.namespace })).items as ReplicaSet[];
    const pods = (await store.list('Pod', { namespace: t.key.namespace })).items as Pod[];
    const dep = dependentsOf(t.obj as Deployment | ReplicaSet, rss, pods);
    for (const rs of dep.replicaSets) await store.delete(keyOf(rs)).catch((e) => (e instanceof StoreError && e.code === 'NotFound' ? undefined : Promise.reject(e)));
    for (const p of dep.pods) await deletePodGracefully(store, { namespace: t.key.namespace, name: p.metadata.name }, { gracePeriodSeconds: grace, uid: p.metadata.uid });
  }
  return 0;
}

function printObjects(
  items: Resource[],
  kind: KindInfo,
  output: string | undefined,
  allNamespaces: boolean,
  single: boolean,
  io: Io,
  egress?: (r: Resource) => string,
): void {
  const clean = items.map(forOutput);
  if (output === 'yaml' || output === 'json') {
    const doc = single ? clean[0] : { apiVersion: 'v1', kind: 'List', items: clean };
    io.out(output === 'json' ? JSON.stringify(doc, null, 2) + '\n' : toYaml(doc, { lineWidth: 0 }));
    return;
  }
  if (output === 'name') {
    for (const r of items) io.out(`${userIdentity(kind, r)}\n`);
    return;
  }
  if (items.length === 0) {
    io.err(`No resources found${kind.namespaced && !allNamespaces ? ' in this namespace' : ''}.\n`);
    return;
  }
  io.out(printTable(items, kind, { wide: output === 'wide', allNamespaces, egress }));
}

/** Objects as a user sees them: apiVersion and kind first. */
function forOutput(r: Resource): Resource {
  const out: Resource = { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata };
  if (r.spec !== undefined) out.spec = r.spec;
  if (r.status !== undefined) out.status = r.status;
  return out;
}
