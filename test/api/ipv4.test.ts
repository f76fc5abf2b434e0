import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, cidrsOverlap, formatCidr, formatIPv4, hasHostBits, isLinkLocal, networkOf, parseCidr, parseIPv4 } from '../../src/api/ipv4.js';

test('parseIPv4 accepts dotted quads and rejects the rest', () => {
  assert.equal(parseIPv4('10.0.0.1'), 0x0a000001);
  assert.equal(parseIPv4('255.255.255.255'), 0xffffffff);
  for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', '', 'a.b.c.d', '1.2.3.-1']) assert.equal(parseIPv4(bad), undefined, bad);
  assert.equal(formatIPv4(0xc0a80101), '192.168.1.1');
});

test('CIDRs: host bits, network, containment, overlap, link-local', () => {
  const c = parseCidr('10.1.2.3/16')!;
  assert.ok(hasHostBits(c));
  assert.equal(formatCidr(networkOf(c)), '10.1.0.0/16');
  assert.ok(!hasHostBits(parseCidr('0.0.0.0/0')!));
  assert.equal(parseCidr('10.0.0.0/33'), undefined);
  assert.equal(parseCidr('10.0.0.0'), undefined);
  assert.ok(cidrContains(parseCidr('10.0.0.0/8')!, parseIPv4('10.200.1.1')!));
  assert.ok(!cidrContains(parseCidr('10.0.0.0/8')!, parseIPv4('11.0.0.1')!));
  assert.ok(cidrsOverlap(parseCidr('10.0.0.0/8')!, parseCidr('10.10.0.0/16')!));
  assert.ok(!cidrsOverlap(parseCidr('10.10.10.0/31')!, parseCidr('10.10.10.2/31')!));
  assert.ok(isLinkLocal(parseCidr('169.254.10.0/24')!));
  assert.ok(isLinkLocal(parseCidr('169.0.0.0/8')!));
  assert.ok(!isLinkLocal(parseCidr('10.0.0.0/8')!));
});
