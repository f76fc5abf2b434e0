// A table of bad inputs, each with the exact messages `egw apply` must print. Every case is applied with the CLI to a
// real SQLite store already holding a base scenario, and must leave the store exactly as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { ANNOTATION } from '../../src/api/types.js';
import { openStore } from '../../src/datastore/open.js';

const BASE = `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: egress-ippool-1}
spec: {cidr: 10.10.10.0/31, blockSize: 31, nodeSelector: "!all()"}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: nat-pool}
spec: {cidr: 10.20.0.0/24, natOutgoing: true}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: operator.tigera.io/v1
kind: EgressGateway
metadata: {name: red, namespace: default}
spec: {replicas: 1, ipPools: [{name: egress-ippool-1}]}
`;

const pool = (spec: string) => `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: p1
spec:
${spec}`;

const egw = (spec: string) => `apiVersion: operator.tigera.io/v1
kind: EgressGateway
metadata:
  name: blue
  namespace: default
spec:
${spec}`;

const policy = (rules: string) => `apiVersion: projectcalico.org/v3
kind: EgressGatewayPolicy
metadata:
  name: pol
spec:
  rules:
${rules}`;

const felix = (spec: string, name = 'default') => `apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata:
  name: ${name}
spec:
${spec}`;

const PROBE_OK = `  ipPools: [{name: egress-ippool-1}]
  replicas: 1
  egressGatewayFailureDetection:
`;

const deploy = (spec: string, kind = 'Deployment') => `apiVersion: apps/v1
kind: ${kind}
metadata:
  name: web
  namespace: apps
spec:
${spec}`;
const TEMPLATE = `  template:
    metadata:
      labels: {app: web}
    spec:
      containers: [{name: c, image: busybox}]
`;

interface Case {
  name: string;
  text: string;
  file?: string;
  errors: string[];
}

const CASES: Case[] = [
  // ---- broken documents
  { name: 'broken YAML indentation', text: 'kind: IPPool\nmetadata:\n  name: a\n name: b\n', errors: ['bad.yaml:4:1: invalid YAML: All mapping items must start at the same column'] },
  { name: 'unterminated quote', text: 'kind: "IPPool\nmetadata: {}\n', errors: ['bad.yaml:3:1: invalid YAML: Missing closing "quote'] },
  { name: 'duplicate key', text: pool('  cidr: 10.0.0.0/24\n  cidr: 10.1.0.0/24\n'), errors: ['bad.yaml:7:3: invalid YAML: Map keys must be unique'] },
  { name: 'document is a list', text: '- a\n- b\n', errors: ['bad.yaml:1:1: document: expected a Kubernetes-style object with apiVersion, kind and metadata, got object'] },
  { name: 'missing kind', text: 'apiVersion: v1\nmetadata: {name: x}\n', errors: ['bad.yaml:1:1: object x: kind: required field is missing'] },
  { name: 'unknown kind', text: 'apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\n', errors: ['bad.yaml:2:7: StatefulSet x: kind: unknown kind "StatefulSet"; egw knows IPPool, EgressGateway, EgressGatewayPolicy, FelixConfiguration, Node, Namespace, Pod, Deployment, ReplicaSet'] },
  { name: 'wrong apiVersion', text: 'apiVersion: projectcalico.org/v3\nkind: EgressGateway\nmetadata: {name: x}\nspec: {ipPools: [{name: egress-ippool-1}]}\n', errors: ['bad.yaml:1:13: EgressGateway default/x: apiVersion: EgressGateway is operator.tigera.io/v1, not "projectcalico.org/v3"'] },
  { name: 'missing name', text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  labels: {a: b}\n', errors: ['bad.yaml:4:3: Namespace: metadata.name: required field is missing'] },
  { name: 'bad name', text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: My_NS\n', errors: [`bad.yaml:4:9: Namespace My_NS: metadata.name: "My_NS" is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`] },
  { name: 'namespace on a cluster-scoped kind', text: 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\n  namespace: default\nspec: {cidr: 10.1.0.0/24}\n', errors: ['bad.yaml:5:14: IPPool p1: metadata.namespace: IPPool is cluster-scoped and has no namespace; remove this field'] },
  { name: 'unknown top-level field', text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\nspecs: {}\n', errors: ['bad.yaml:4:1: Namespace x: specs: unknown field; did you mean spec?'] },
  { name: 'bad label value', text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    team: "a b"\n', errors: [`bad.yaml:6:11: Namespace x: metadata.labels.team: label value "a b" is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`] },
  { name: 'label value not a string', text: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    tier: 1\n', errors: ['bad.yaml:6:11: Namespace x: metadata.labels.tier: expected a string, got number 1; quote it'] },

  // ---- IPPool
  { name: 'IPPool unknown field with suggestion', text: pool('  cidr: 10.1.0.0/24\n  blockSise: 26\n'), errors: ['bad.yaml:7:3: IPPool p1: spec.blockSise: unknown field; did you mean blockSize?'] },
  { name: 'IPPool field Calico does not know', text: pool('  cidr: 10.1.0.0/24\n  egressOnly: true\n'), errors: ['bad.yaml:7:3: IPPool p1: spec.egressOnly: unknown field'] },
  { name: 'IPPool missing cidr', text: pool('  blockSize: 26\n'), errors: ['bad.yaml:6:3: IPPool p1: spec.cidr: required field is missing'] },
  { name: 'IPPool cidr with host bits', text: pool('  cidr: 10.1.0.1/24\n'), errors: ['bad.yaml:6:9: IPPool p1: spec.cidr: "10.1.0.1/24" has host bits set; did you mean 10.1.0.0/24?'] },
  { name: 'IPPool cidr not a CIDR', text: pool('  cidr: 10.1.0.0\n'), errors: ['bad.yaml:6:9: IPPool p1: spec.cidr: "10.1.0.0" is not a CIDR such as 10.10.10.0/30 or fd00:10::/120'] },
  { name: 'IPPool IPv6 with IPIP', text: pool('  cidr: "fd00::/120"\n  ipipMode: Always\n'), errors: ['bad.yaml:7:13: IPPool p1: spec.ipipMode: IPIP is IPv4 only; an IPv6 pool needs ipipMode Never (or VXLAN), got Always'] },
  { name: 'IPPool IPv6 link-local', text: pool('  cidr: "fe80::/120"\n'), errors: ['bad.yaml:6:9: IPPool p1: spec.cidr: fe80::/120 overlaps the IPv6 link-local range fe80::/10, which cannot be an IP pool'] },
  { name: 'IPPool link-local', text: pool('  cidr: 169.254.1.0/24\n'), errors: ['bad.yaml:6:9: IPPool p1: spec.cidr: 169.254.1.0/24 overlaps the link-local range 169.254.0.0/16, which cannot be an IP pool'] },
  { name: 'IPPool blockSize too small', text: pool('  cidr: 10.1.0.0/16\n  blockSize: 19\n'), errors: ['bad.yaml:7:14: IPPool p1: spec.blockSize: must be between 20 and 32, got 19'] },
  { name: 'IPPool blockSize too large', text: pool('  cidr: 10.1.0.0/16\n  blockSize: 33\n'), errors: ['bad.yaml:7:14: IPPool p1: spec.blockSize: must be between 20 and 32, got 33'] },
  { name: 'IPPool prefix longer than block', text: pool('  cidr: 10.1.0.0/28\n'), errors: ['bad.yaml:6:9: IPPool p1: spec.cidr: the prefix /28 is longer than the default block size 26; set blockSize to 28 or more'] },
  { name: 'IPPool prefix longer than its blockSize', text: pool('  cidr: 10.1.0.0/28\n  blockSize: 27\n'), errors: ["bad.yaml:7:14: IPPool p1: spec.blockSize: the pool's prefix /28 is longer than its block size 27; use blockSize 28 or more"] },
  { name: 'IPPool blockSize as a string', text: pool('  cidr: 10.1.0.0/24\n  blockSize: "31"\n'), errors: ['bad.yaml:7:14: IPPool p1: spec.blockSize: expected an integer, got string "31"'] },
  { name: 'IPPool natOutgoing not a bool', text: pool('  cidr: 10.1.0.0/24\n  natOutgoing: "yes"\n'), errors: ['bad.yaml:7:16: IPPool p1: spec.natOutgoing: expected true or false, got string "yes"'] },
  { name: 'IPPool IPIP and VXLAN both on', text: pool('  cidr: 10.1.0.0/24\n  ipipMode: Always\n  vxlanMode: CrossSubnet\n'), errors: ['bad.yaml:8:14: IPPool p1: spec.vxlanMode: IPIP and VXLAN cannot both be enabled on one pool; set one of ipipMode, vxlanMode to Never'] },
  { name: 'IPPool bad nodeSelector', text: pool('  cidr: 10.1.0.0/24\n  nodeSelector: "zone = \'a\'"\n'), errors: [`bad.yaml:7:17: IPPool p1: spec.nodeSelector: bad selector "zone = 'a'": unexpected "=" at column 6; expected "==", "!=", "in", "not in", "contains", "starts with" or "ends with"`] },
  { name: 'IPPool bad allowedUses', text: pool('  cidr: 10.1.0.0/24\n  allowedUses: [Workload, Egress]\n'), errors: ['bad.yaml:7:27: IPPool p1: spec.allowedUses[1]: "Egress" is not one of Workload, Tunnel, LoadBalancer'] },
  { name: 'IPPool overlapping a stored pool', text: pool('  cidr: 10.10.10.0/24\n'), errors: ['bad.yaml:6:9: IPPool p1: spec.cidr: 10.10.10.0/24 overlaps IPPool egress-ippool-1 (10.10.10.0/31)'] },
  { name: 'IPPool v1 field', text: pool('  cidr: 10.1.0.0/24\n  nat-outgoing: true\n'), errors: ['bad.yaml:7:3: IPPool p1: spec["nat-outgoing"]: the v1 field nat-outgoing is not accepted in projectcalico.org/v3; use natOutgoing'] },

  // ---- EgressGateway
  { name: 'EgressGateway without ipPools', text: egw('  replicas: 1\n'), errors: ['bad.yaml:7:3: EgressGateway default/blue: spec.ipPools: required field is missing'] },
  { name: 'EgressGateway with empty ipPools', text: egw('  ipPools: []\n'), errors: ['bad.yaml:7:12: EgressGateway default/blue: spec.ipPools: must list at least one pool ({name: ...} or {cidr: ...})'] },
  { name: 'EgressGateway naming a missing pool', text: egw('  ipPools:\n    - name: no-such-pool\n'), errors: ['bad.yaml:8:7: EgressGateway default/blue: spec.ipPools[0]: no IPPool named no-such-pool exists; create the pool first (or in the same input)'] },
  { name: 'EgressGateway cidr matching no pool', text: egw('  ipPools:\n    - cidr: 10.99.0.0/31\n'), errors: ['bad.yaml:8:7: EgressGateway default/blue: spec.ipPools[0]: no IPPool with cidr 10.99.0.0/31 exists; create the pool first (or in the same input)'] },
  { name: 'EgressGateway pool name and cidr disagree', text: egw('  ipPools:\n    - name: egress-ippool-1\n      cidr: 10.20.0.0/24\n'), errors: ['bad.yaml:9:13: EgressGateway default/blue: spec.ipPools[0].cidr: IPPool egress-ippool-1 has cidr 10.10.10.0/31, not 10.20.0.0/24'] },
  { name: 'EgressGateway on an IPv6 pool', text: `${pool('  cidr: "fd00:10::/126"\n  blockSize: 128\n')}---\n${egw('  ipPools: [{name: p1}]\n')}`, errors: ['bad.yaml:15:13: EgressGateway default/blue: spec.ipPools[0]: IPPool p1 (fd00:10::/126) is an IPv6 pool: IPv6 egress is not supported yet; an EgressGateway takes its addresses from IPv4 pools'] },
  { name: 'EgressGateway negative replicas', text: egw('  replicas: -1\n  ipPools: [{name: egress-ippool-1}]\n'), errors: ['bad.yaml:7:13: EgressGateway default/blue: spec.replicas: must be at least 0, got -1'] },
  { name: 'EgressGateway replicas exceed the pool', text: egw('  replicas: 2\n  ipPools: [{name: egress-ippool-1}]\n'), errors: ['bad.yaml:7:13: EgressGateway default/blue: spec.replicas: 2 gateways do not fit the 1 free address of egress-ippool-1 (1 taken by other gateways)'] },
  { name: 'EgressGateway bad logSeverity', text: egw('  ipPools: [{name: egress-ippool-1}]\n  logSeverity: Verbose\n'), errors: ['bad.yaml:8:16: EgressGateway default/blue: spec.logSeverity: "Verbose" is not one of Fatal, Error, Warn, Info, Debug, Trace'] },
  { name: 'failure detection without a probe', text: egw(PROBE_OK + '    healthTimeoutDataStoreSeconds: 30\n'), errors: ['bad.yaml:10:5: EgressGateway default/blue: spec.egressGatewayFailureDetection: configure icmpProbe, httpProbe or both (failure detection needs a probe)'] },
  { name: 'ICMP probe timeout below interval', text: egw(PROBE_OK + '    icmpProbe:\n      ips: [192.0.2.1]\n      intervalSeconds: 10\n      timeoutSeconds: 5\n'), errors: ['bad.yaml:13:23: EgressGateway default/blue: spec.egressGatewayFailureDetection.icmpProbe.timeoutSeconds: must be at least intervalSeconds (10), got 5'] },
  { name: 'HTTP probe default timeout below interval', text: egw(PROBE_OK + '    httpProbe:\n      urls: ["http://192.0.2.1/"]\n      intervalSeconds: 60\n'), errors: ['bad.yaml:11:7: EgressGateway default/blue: spec.egressGatewayFailureDetection.httpProbe.timeoutSeconds: must be at least intervalSeconds (60), got 30'] },
  { name: 'ICMP probe without ips', text: egw(PROBE_OK + '    icmpProbe:\n      intervalSeconds: 5\n'), errors: ['bad.yaml:11:7: EgressGateway default/blue: spec.egressGatewayFailureDetection.icmpProbe.ips: required field is missing'] },
  { name: 'ICMP probe target not an IP', text: egw(PROBE_OK + '    icmpProbe:\n      ips: [example.com]\n'), errors: ['bad.yaml:11:13: EgressGateway default/blue: spec.egressGatewayFailureDetection.icmpProbe.ips[0]: "example.com" is not an IPv4 address'] },
  { name: 'HTTP probe target not a URL', text: egw(PROBE_OK + '    httpProbe:\n      urls: ["ftp://192.0.2.1/"]\n'), errors: ['bad.yaml:11:14: EgressGateway default/blue: spec.egressGatewayFailureDetection.httpProbe.urls[0]: "ftp://192.0.2.1/" is not an http:// or https:// URL'] },
  { name: 'datastore timeout zero', text: egw(PROBE_OK + '    healthTimeoutDataStoreSeconds: 0\n    icmpProbe: {ips: [192.0.2.1]}\n'), errors: ['bad.yaml:10:36: EgressGateway default/blue: spec.egressGatewayFailureDetection.healthTimeoutDataStoreSeconds: must be at least 1, got 0'] },
  { name: 'template with unknown pod field', text: egw('  ipPools: [{name: egress-ippool-1}]\n  template:\n    spec:\n      hostNetwork: true\n'), errors: ['bad.yaml:10:7: EgressGateway default/blue: spec.template.spec.hostNetwork: unknown field'] },

  // ---- EgressGatewayPolicy
  { name: 'policy with no rules', text: policy('    []\n').replace('  rules:\n    []', '  rules: []'), errors: ['bad.yaml:6:10: EgressGatewayPolicy pol: spec.rules: must have at least one rule'] },
  { name: 'policy destination not a CIDR', text: policy('    - destination: {cidr: 10.0.0.0}\n      gateway: {selector: "a == \'b\'", namespaceSelector: all()}\n'), errors: ['bad.yaml:7:27: EgressGatewayPolicy pol: spec.rules[0].destination.cidr: "10.0.0.0" is not an IPv4 CIDR such as 10.0.0.0/8'] },
  { name: 'policy destination IPv6', text: policy('    - destination: {cidr: "2001:db8::/32"}\n'), errors: ['bad.yaml:7:27: EgressGatewayPolicy pol: spec.rules[0].destination.cidr: "2001:db8::/32": IPv6 destinations are not supported yet'] },
  { name: 'policy destination with host bits', text: policy('    - destination: {cidr: 10.0.0.0/8}\n    - destination:\n        cidr: 10.0.0.1/8\n'), errors: ['bad.yaml:9:15: EgressGatewayPolicy pol: spec.rules[1].destination.cidr: "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?'] },
  { name: 'policy duplicate destination after normalisation', text: policy('    - gateway: {selector: "a == \'b\'", namespaceSelector: all()}\n    - destination: {cidr: 0.0.0.0/0}\n'), errors: ["bad.yaml:8:20: EgressGatewayPolicy pol: spec.rules[1].destination: destination 0.0.0.0/0 is the same as rule 0's; each destination may appear once"] },
  { name: 'policy gateway with empty selector', text: policy('    - gateway: {selector: "", namespaceSelector: all()}\n'), errors: ['bad.yaml:7:27: EgressGatewayPolicy pol: spec.rules[0].gateway.selector: must not be empty; use "all()" to select everything'] },
  { name: 'policy gateway without namespaceSelector', text: policy('    - gateway:\n        selector: "a == \'b\'"\n'), errors: ['bad.yaml:8:9: EgressGatewayPolicy pol: spec.rules[0].gateway.namespaceSelector: required field is missing'] },
  { name: 'policy bad selector', text: policy('    - gateway:\n        selector: "egress-code == \'red\' &&"\n        namespaceSelector: all()\n'), errors: [`bad.yaml:8:19: EgressGatewayPolicy pol: spec.rules[0].gateway.selector: bad selector "egress-code == 'red' &&": unexpected end of selector at column 24; expected a label key, "!", "(", "has(", "all()" or "global()"`] },
  { name: 'policy negative maxNextHops', text: policy('    - gateway: {selector: all(), namespaceSelector: all(), maxNextHops: -1}\n'), errors: ['bad.yaml:7:73: EgressGatewayPolicy pol: spec.rules[0].gateway.maxNextHops: must be at least 0, got -1'] },
  { name: 'policy that does nothing', text: policy('    - description: nothing\n'), errors: ['bad.yaml:7:5: EgressGatewayPolicy pol: spec.rules: no rule sets a destination or a gateway, so the policy would do nothing'] },
  { name: 'policy bad gatewayPreference', text: policy('    - gateway: {selector: all(), namespaceSelector: all()}\n      gatewayPreference: NodeLocal\n'), errors: ['bad.yaml:8:26: EgressGatewayPolicy pol: spec.rules[0].gatewayPreference: "NodeLocal" is not one of None, PreferNodeLocal'] },

  // ---- FelixConfiguration
  { name: 'FelixConfiguration wrong name', text: felix('  egressIPSupport: EnabledPerNamespace\n', 'global'), errors: ['bad.yaml:4:9: FelixConfiguration global: metadata.name: FelixConfiguration must be named "default" (or "node.<nodename>"), got "global"'] },
  { name: 'FelixConfiguration bad egressIPSupport', text: felix('  egressIPSupport: Enabled\n'), errors: ['bad.yaml:6:20: FelixConfiguration default: spec.egressIPSupport: "Enabled" is not one of Disabled, EnabledPerNamespace, EnabledPerNamespaceOrPerPod'] },
  { name: 'FelixConfiguration rule priority out of range', text: felix('  egressIPRoutingRulePriority: 32766\n'), errors: ['bad.yaml:6:32: FelixConfiguration default: spec.egressIPRoutingRulePriority: must be between 1 and 32765, got 32766'] },
  { name: 'FelixConfiguration VNI out of range', text: felix('  egressIPVXLANVNI: 16777216\n'), errors: ['bad.yaml:6:21: FelixConfiguration default: spec.egressIPVXLANVNI: must be between 1 and 16777215, got 16777216'] },
  { name: 'FelixConfiguration bad poll interval', text: felix('  egressGatewayPollInterval: 10\n'), errors: ['bad.yaml:6:30: FelixConfiguration default: spec.egressGatewayPollInterval: expected a string, got number 10'] },
  { name: 'FelixConfiguration poll interval not a duration', text: felix('  egressGatewayPollInterval: "10 seconds"\n'), errors: ['bad.yaml:6:30: FelixConfiguration default: spec.egressGatewayPollInterval: "10 seconds" is not a duration such as "10s" or "200ms"'] },

  // ---- Namespace / Pod
  { name: 'namespace annotation with a bad selector', text: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  annotations:\n    ${ANNOTATION.selector}: "has(egress-code"\n`, errors: [`bad.yaml:6:40: Namespace x: metadata.annotations["${ANNOTATION.selector}"]: bad selector "has(egress-code": unexpected end of selector at column 16; expected ")"`] },
  { name: 'pod maxNextHops not a number', text: `apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  namespace: apps\n  annotations:\n    ${ANNOTATION.maxNextHops}: "two"\nspec:\n  containers: [{name: c}]\n`, errors: [`bad.yaml:7:43: Pod apps/c: metadata.annotations["${ANNOTATION.maxNextHops}"]: "two" is not a whole number of hops (0 = all)`] },
  { name: 'pod maxNextHops of 10 digits (calc fails closed on it too)', text: `apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n  namespace: apps\n  annotations:\n    ${ANNOTATION.maxNextHops}: "1234567890"\nspec:\n  containers: [{name: c}]\n`, errors: [`bad.yaml:7:43: Pod apps/c: metadata.annotations["${ANNOTATION.maxNextHops}"]: "1234567890" is not a whole number of hops (0 = all)`] },
  { name: 'pod without containers', text: 'apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: apps}\nspec: {nodeName: node-1}\n', errors: ['bad.yaml:4:7: Pod apps/c: spec.containers: required field is missing'] },
  { name: 'pod in a namespace that does not exist', text: 'apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: nowhere}\nspec: {containers: [{name: c}]}\n', errors: ['bad.yaml:3:32: Pod nowhere/c: metadata.namespace: namespace "nowhere" does not exist; create it first (or in the same input)'] },
  { name: 'pod with a bad container port', text: 'apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: apps}\nspec:\n  containers:\n    - name: c\n      ports: [{containerPort: 70000}]\n', errors: ['bad.yaml:7:31: Pod apps/c: spec.containers[0].ports[0].containerPort: must be between 1 and 65535, got 70000'] },

  // ---- Deployment / ReplicaSet
  { name: 'deployment selector does not match the template', text: deploy(`  selector:\n    matchLabels: {app: api}\n${TEMPLATE}`), errors: ['bad.yaml:11:15: Deployment apps/web: spec.template.metadata.labels: `selector` does not match template `labels`'] },
  { name: 'deployment without selector', text: deploy(TEMPLATE), errors: ['bad.yaml:7:3: Deployment apps/web: spec.selector: required field is missing'] },
  { name: 'deployment with an empty selector', text: deploy(`  selector: {}\n${TEMPLATE}`), errors: ['bad.yaml:7:13: Deployment apps/web: spec.selector: empty selector is invalid for deployment'] },
  { name: 'deployment maxSurge and maxUnavailable both 0', text: deploy(`  selector:\n    matchLabels: {app: web}\n  strategy:\n    rollingUpdate: {maxSurge: 0, maxUnavailable: "0%"}\n${TEMPLATE}`), errors: ['bad.yaml:10:50: Deployment apps/web: spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when `maxSurge` is 0'] },
  { name: 'deployment maxSurge not a number or percentage', text: deploy(`  selector:\n    matchLabels: {app: web}\n  strategy:\n    rollingUpdate: {maxSurge: "one"}\n${TEMPLATE}`), errors: ['bad.yaml:10:31: Deployment apps/web: spec.strategy.rollingUpdate.maxSurge: "one" is neither a whole number of pods nor a percentage such as "25%"'] },
  { name: 'deployment maxUnavailable over 100%', text: deploy(`  selector:\n    matchLabels: {app: web}\n  strategy:\n    rollingUpdate: {maxUnavailable: "150%"}\n${TEMPLATE}`), errors: ['bad.yaml:10:37: Deployment apps/web: spec.strategy.rollingUpdate.maxUnavailable: must not be greater than 100%, got 150%'] },
  { name: 'deployment Recreate with rollingUpdate', text: deploy(`  selector:\n    matchLabels: {app: web}\n  strategy:\n    type: Recreate\n    rollingUpdate: {maxSurge: 1}\n${TEMPLATE}`), errors: ["bad.yaml:11:20: Deployment apps/web: spec.strategy.rollingUpdate: may not be specified when strategy `type` is 'Recreate'"] },
  { name: 'deployment unknown strategy', text: deploy(`  selector:\n    matchLabels: {app: web}\n  strategy: {type: BlueGreen}\n${TEMPLATE}`), errors: ['bad.yaml:9:20: Deployment apps/web: spec.strategy.type: "BlueGreen" is not one of RollingUpdate, Recreate'] },
  { name: 'deployment negative replicas', text: deploy(`  replicas: -1\n  selector:\n    matchLabels: {app: web}\n${TEMPLATE}`), errors: ['bad.yaml:7:13: Deployment apps/web: spec.replicas: must be at least 0, got -1'] },
  { name: 'deployment template without containers', text: deploy(`  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec: {}\n`), errors: ['bad.yaml:12:11: Deployment apps/web: spec.template.spec.containers: required field is missing'] },
  { name: 'deployment template with a bad egress annotation', text: deploy(`  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n      annotations:\n        ${ANNOTATION.selector}: "has(x"\n    spec:\n      containers: [{name: c}]\n`), errors: [`bad.yaml:13:44: Deployment apps/web: spec.template.metadata.annotations["${ANNOTATION.selector}"]: bad selector "has(x": unexpected end of selector at column 6; expected ")"`] },
  { name: 'deployment template restartPolicy Never', text: deploy(`  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      restartPolicy: Never\n      containers: [{name: c}]\n`), errors: ['bad.yaml:13:22: Deployment apps/web: spec.template.spec.restartPolicy: "Never": only "Always" is supported in a pod template'] },
  { name: 'deployment matchExpressions In without values', text: deploy(`  selector:\n    matchExpressions: [{key: app, operator: In}]\n${TEMPLATE}`), errors: ["bad.yaml:8:24: Deployment apps/web: spec.selector.matchExpressions[0].values: must be specified when `operator` is 'In'"] },
  { name: 'deployment negative terminationGracePeriodSeconds', text: deploy(`  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: -5\n      containers: [{name: c}]\n`), errors: ['bad.yaml:13:38: Deployment apps/web: spec.template.spec.terminationGracePeriodSeconds: must be at least 0, got -5'] },
  { name: 'replicaset with a deployment field', text: deploy(`  selector:\n    matchLabels: {app: web}\n  strategy: {type: Recreate}\n${TEMPLATE}`, 'ReplicaSet'), errors: ['bad.yaml:9:3: ReplicaSet apps/web: spec.strategy: unknown field'] },

  // ---- batches
  { name: 'the same object twice', text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n', errors: ['bad.yaml:7:18: Namespace x: metadata.name: defined twice in this input (first at bad.yaml:1)'] },
  { name: 'one good and one bad document', text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bad, label: {a: b}}\n', errors: ['bad.yaml:7:23: Namespace bad: metadata.label: unknown field; did you mean labels?'] },
  { name: 'JSON with a wrong type', file: 'bad.json', text: '{"apiVersion": "projectcalico.org/v3", "kind": "IPPool",\n "metadata": {"name": "p1"},\n "spec": {"cidr": "10.1.0.0/24", "disabled": "no"}}\n', errors: ['bad.json:3:46: IPPool p1: spec.disabled: expected true or false, got string "no"'] },
  { name: 'empty input', text: '# nothing here\n', errors: ['bad.yaml:1:1: no objects found (the input has no YAML or JSON documents)'] },
];

test('the table has at least 40 bad inputs', () => {
  assert.ok(CASES.length >= 40, `only ${CASES.length} cases`);
});

const dir = mkdtempSync(join(tmpdir(), 'egw-bad-'));
const db = join(dir, 'egw.db');
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the base scenario applies', async () => {
  writeFileSync(join(dir, 'base.yaml'), BASE);
  const r = await runCli(['--datastore', `sqlite:${db}`, 'apply', '-f', join(dir, 'base.yaml')]);
  assert.equal(r.code, 0, r.stderr);
});

for (const c of CASES) {
  test(`bad input: ${c.name}`, async () => {
    const before = await storeDump(db);
    const file = c.file ?? 'bad.yaml';
    const cwdFile = join(dir, file);
    writeFileSync(cwdFile, c.text);
    const r = await runCli(['--datastore', `sqlite:${db}`, 'apply', '-f', file], { cwd: dir });
    assert.equal(r.code, 1, `expected failure, got code ${r.code}; stdout: ${r.stdout}`);
    const errorLines = r.stderr.split('\n').filter((l) => l && !l.startsWith('warning: ') && !l.startsWith('error: nothing applied'));
    assert.deepEqual(errorLines, c.errors);
    assert.match(r.stderr, /error: nothing applied \(\d+ problems?\)/);
    assert.equal(r.stdout, '');
    assert.deepEqual(await storeDump(db), before, 'the store changed');
  });
}

// Host-IP mode (Calico Enterprise 3.23; docs/behaviour.md §3.3): natOutgoing on an egress pool is accepted, from
// either side — a gateway naming a natOutgoing pool, and natOutgoing turned on for a pool a stored gateway uses.
test('host-IP mode: an EgressGateway on a natOutgoing pool, and natOutgoing on a pool a gateway uses, are accepted', async () => {
  const hip = mkdtempSync(join(tmpdir(), 'egw-hostip-'));
  try {
    const ds = `sqlite:${join(hip, 'egw.db')}`;
    writeFileSync(join(hip, 'base.yaml'), BASE);
    assert.equal((await runCli(['--datastore', ds, 'apply', '-f', join(hip, 'base.yaml')])).code, 0);
    writeFileSync(join(hip, 'blue.yaml'), egw('  ipPools: [{name: nat-pool}]\n'));
    const blue = await runCli(['--datastore', ds, 'apply', '-f', join(hip, 'blue.yaml')]);
    assert.equal(blue.code, 0, blue.stderr);
    writeFileSync(join(hip, 'pool.yaml'), 'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: egress-ippool-1}\nspec:\n  cidr: 10.10.10.0/31\n  blockSize: 31\n  nodeSelector: "!all()"\n  natOutgoing: true\n');
    const pool = await runCli(['--datastore', ds, 'apply', '-f', join(hip, 'pool.yaml')]);
    assert.equal(pool.code, 0, pool.stderr);
    const store = await openStore(ds);
    try {
      const p = await store.get({ kind: 'IPPool', namespace: '', name: 'egress-ippool-1' });
      assert.equal((p?.spec as { natOutgoing?: boolean }).natOutgoing, true);
      assert.ok(await store.get({ kind: 'EgressGateway', namespace: 'default', name: 'blue' }));
    } finally {
      await store.close();
    }
  } finally {
    rmSync(hip, { recursive: true, force: true });
  }
});

async function storeDump(path: string): Promise<string> {
  const store = await openStore(`sqlite:${path}`);
  try {
    const kinds = ['IPPool', 'EgressGateway', 'EgressGatewayPolicy', 'FelixConfiguration', 'Node', 'Namespace', 'Pod', 'Deployment', 'ReplicaSet'];
    const out: unknown[] = [await store.revision()];
    for (const k of kinds) out.push((await store.list(k)).items);
    return JSON.stringify(out);
  } finally {
    await store.close();
  }
}
