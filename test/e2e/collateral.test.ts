// No collateral damage (docs/behaviour.md §5), end to end in a lab: long-lived TCP connections spread over the gateways survive
// every change that keeps their own gateway healthy — scaling up, a maxNextHops change, an unrelated policy edit,
// another gateway dying, and scaling down with a drain window — and keep their source IP. Only the connections of
// the gateway that dies break. (`make bench` runs the same scenario and reports the counts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LabHarness } from '../helpers/e2e.js';
import { suiteGate } from '../helpers/env.js';
import { collateralScenario, demoScenario, ECHO, liveGateways, type StepResult } from '../helpers/scenarios.js';

const root = suiteGate(['ip', 'nft', 'curl']);
const lab = new LabHarness();
let results: StepResult[] = [];

describe('no collateral damage', { skip: root.skip }, () => {
  before(async () => {
    root.check();
    await lab.up();
    await lab.apply(demoScenario({ replicas: 3, graceSeconds: 10 }));
    results = await collateralScenario(lab, { graceSeconds: 10, connections: 30 });
  });
  after(async () => {
    await lab.down();
  });

  test('30 connections, spread over the gateways', () => {
    assert.equal(results[0].connections, 30);
  });

  for (const name of ['scale 3 → 5', 'maxNextHops 0 → 2', 'unrelated policy rule edited', 'scale 5 → 2, inside the drain window']) {
    test(`${name}: no connection breaks or changes its source IP`, () => {
      const r = results.find((x) => x.step === name);
      assert.ok(r, `step ${name} ran`);
      assert.deepEqual({ broken: r.broken, sourceChanged: r.sourceChanged }, { broken: 0, sourceChanged: 0 }, JSON.stringify(r));
    });
  }

  test('one gateway dies: exactly its connections break, none of the others', () => {
    const r = results.find((x) => x.step === 'one gateway dies (link cut)')!;
    assert.ok(r.onKilledGateway > 0, 'the killed gateway carried connections');
    assert.equal(r.brokenOnHealthyGateways, 0, JSON.stringify(r));
    assert.equal(r.broken, r.onKilledGateway, JSON.stringify(r));
    assert.equal(r.sourceChanged, 0);
  });

  test('after the scale-down, new connections use only the two remaining gateways', async () => {
    const remaining = (await liveGateways(lab)).map((g) => g.ip);
    assert.equal(remaining.length, 2);
    const fresh = await lab.curl('tenant-b', 'client-b', `http://${ECHO}/`);
    assert.ok(fresh && remaining.includes(fresh.sourceIp), `a new connection went via ${fresh?.sourceIp}`);
  });
});
