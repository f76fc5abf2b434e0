import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { LabFileError, loadLabFile, parseLabFile } from '../../src/lab/labfile.js';

const demo = fileURLToPath(new URL('../../examples/lab/demo.yaml', import.meta.url));

function problems(text: string): string[] {
  try {
    parseLabFile(text, 'lab.yaml');
  } catch (e) {
    assert.ok(e instanceof LabFileError, String(e));
    return e.message.split('\n');
  }
  assert.fail('expected a LabFileError');
}

test('the demo lab file parses with its addresses', () => {
  const c = loadLabFile(demo);
  assert.equal(c.name, 'demo');
  assert.deepEqual(c.underlay, { cidr: '172.31.0.0/24', prefix: 24, mtu: 1500, router: '172.31.0.1' });
  assert.deepEqual(
    c.nodes.map((n) => [n.name, n.ip, n.labels['kubernetes.io/hostname'], n.labels['kubernetes.io/os']]),
    [
      ['node-1', '172.31.0.11', 'node-1', 'linux'],
      ['node-2', '172.31.0.12', 'node-2', 'linux'],
    ],
  );
  assert.deepEqual(c.external, {
    cidr: '198.51.100.0/24',
    prefix: 24,
    router: '198.51.100.1',
    echo: '198.51.100.10',
    restricted: { ip: '198.51.100.20', allow: ['10.10.10.0/30'] },
    networks: [{ cidr: '203.0.113.0/24', echo: '203.0.113.10' }],
  });
  assert.deepEqual(c.podPool, { name: 'default-ipv4-ippool', cidr: '10.244.0.0/16', blockSize: 26 });
});

test('defaults: only a name and nodes are required', () => {
  const c = parseLabFile('name: x1\nnodes: [{name: a}, {name: b}, {name: c}]\n');
  assert.equal(c.underlay.cidr, '172.31.0.0/24');
  assert.equal(c.underlay.mtu, 1500);
  assert.deepEqual(c.nodes.map((n) => n.ip), ['172.31.0.11', '172.31.0.12', '172.31.0.13']);
  assert.equal(c.external.echo, '198.51.100.10');
  assert.deepEqual(c.external.restricted, { ip: '198.51.100.20', allow: [] });
  assert.deepEqual(c.external.networks, [{ cidr: '203.0.113.0/24', echo: '203.0.113.10' }]);
  assert.equal(c.podPool.name, 'default-ipv4-ippool');
  assert.deepEqual(parseLabFile('name: x1\nnodes: [{name: a}]\nexternal: {networks: []}\n').external.networks, []);
});

test('unknown fields are errors at file:line:column, with a suggestion', () => {
  const text = ['name: demo', 'nodes:', '  - name: node-1', '    lables: {a: b}', 'underlay: {cidr: 172.31.0.0/24, mtuu: 1500}', 'extra: 1', ''].join('\n');
  assert.deepEqual(problems(text), [
    'lab.yaml:6:1: extra: unknown field',
    'lab.yaml:5:33: underlay.mtuu: unknown field; did you mean mtu?',
    'lab.yaml:4:5: nodes[0].lables: unknown field; did you mean labels?',
  ]);
});

test('bad values name the field and where it was written', () => {
  const text = [
    'name: TooLongName',
    'underlay:',
    '  cidr: 172.31.0.1/24',
    '  mtu: 100',
    'nodes:',
    '  - {name: n1, labels: {a: 1}}',
    '  - {name: n1}',
    '  - {name: Bad_Name}',
    'external:',
    '  echo: 10.0.0.1',
    '  restricted: {ip: 198.51.100.1, allow: [10.10.10.1/30, nope]}',
    '  networks: [198.51.100.128/25]',
    'podPool: {cidr: 10.244.0.0/16, blockSize: 12}',
    '',
  ].join('\n');
  const got = problems(text);
  const expect = [
    /^lab\.yaml:1:7: name: "TooLongName": a lab name is 1-8 characters/,
    /^lab\.yaml:3:9: underlay\.cidr: 172\.31\.0\.1\/24 has host bits set; did you mean 172\.31\.0\.0\/24\?/,
    /^lab\.yaml:4:8: underlay\.mtu: must be between 1280 and 9000, got 100/,
    /^lab\.yaml:6:28: nodes\[0\]\.labels\.a: expected a string, got number 1; quote it/,
    /^lab\.yaml:7:12: nodes\[1\]\.name: duplicate node name n1/,
    /^lab\.yaml:8:12: nodes\[2\]\.name: "Bad_Name": a node name is a DNS label/,
    /^lab\.yaml:10:9: external\.echo: 10\.0\.0\.1 is not a usable host address of 198\.51\.100\.0\/24/,
    /^lab\.yaml:11:20: external\.restricted\.ip: 198\.51\.100\.1 is the router's address/,
    /^lab\.yaml:11:42: external\.restricted\.allow\[0\]: 10\.10\.10\.1\/30 has host bits set/,
    /^lab\.yaml:11:57: external\.restricted\.allow\[1\]: "nope" is not an IPv4 CIDR/,
    /^lab\.yaml:12:14: external\.networks\[0\]: 198\.51\.100\.128\/25 overlaps external\.cidr/,
    /^lab\.yaml:13:43: podPool\.blockSize: must be between 20 and 32, got 12/,
  ];
  for (const re of expect) assert.ok(got.some((l) => re.test(l)), `missing ${re}\n got:\n${got.join('\n')}`);
  assert.equal(got.length, expect.length, got.join('\n'));
});

test('missing fields, wrong shapes and invalid YAML', () => {
  assert.deepEqual(problems('underlay: {}\n'), ['lab.yaml:1:1: name: required field is missing', 'lab.yaml:1:1: nodes: required field is missing']);
  assert.deepEqual(problems('name: a\nnodes: {name: x}\n'), ['lab.yaml:2:8: nodes: expected a list, got a mapping']);
  assert.deepEqual(problems('name: a\nnodes: []\n'), ['lab.yaml:2:8: nodes: a lab needs at least one node']);
  assert.match(problems('name: a\nnodes: [\n')[0], /^lab\.yaml:\d+:\d+: invalid YAML/);
  assert.deepEqual(problems('- a\n'), ['lab.yaml:1:1: (top): expected a mapping (object), got a list', 'lab.yaml:1:1: (top): a lab file is a mapping with name, nodes, and optionally underlay, external, podPool, datastore, controllers']);
  assert.throws(() => loadLabFile('/nonexistent/lab.yaml'), /nonexistent\/lab\.yaml:1:1: cannot read/);
});

test('too many nodes for the underlay', () => {
  const nodes = Array.from({ length: 6 }, (_, i) => `{name: n${i}}`).join(', ');
  const got = problems(`name: a\nunderlay: {cidr: 10.0.0.0/28}\nnodes: [${nodes}]\n`);
  assert.deepEqual(got.length, 2, got.join('\n'));
  assert.match(got[0], /^lab\.yaml:3:\d+: nodes\[4\]\.name: no underlay address left for this node in 10\.0\.0\.0\/28/);
});

test('datastore and controllers: sqlite and 2 by default; etcd and kubernetes get the underlay .2; bad values are named', () => {
  const d = parseLabFile('name: x1\nnodes: [{name: a}]\n');
  assert.deepEqual([d.datastore, d.etcd, d.controllers], ['sqlite', undefined, 2]);
  const e = parseLabFile('name: x1\nunderlay: {cidr: 10.99.0.0/24}\nnodes: [{name: a}]\ndatastore: etcd\ncontrollers: 3\n');
  assert.deepEqual([e.datastore, e.etcd, e.controllers], ['etcd', { ip: '10.99.0.2' }, 3]);
  const k = parseLabFile('name: x1\nunderlay: {cidr: 10.99.0.0/24}\nnodes: [{name: a}]\ndatastore: kubernetes\n');
  assert.deepEqual([k.datastore, k.etcd, k.apiserver], ['kubernetes', undefined, { ip: '10.99.0.2' }]);
  assert.deepEqual(problems('name: x1\nnodes: [{name: a}]\ndatastore: mysql\n'), ['lab.yaml:3:12: datastore: "mysql": expected sqlite (the default), etcd or kubernetes']);
  assert.match(problems('name: x1\nnodes: [{name: a}]\ncontrollers: 0\n')[0], /^lab\.yaml:3:14: controllers: /);
  assert.match(problems('name: x1\nnodes: [{name: a}]\ncontrollers: two\n')[0], /^lab\.yaml:3:14: controllers: /);
});
