// explainEtcdError: gRPC's many spellings of one mistake map to one sentence that names the flag to change. Pure: the
// messages are the ones @grpc/grpc-js produced against the real etcd in test/cli/etcd-bad-input.test.ts, which checks
// the same mapping end to end (this file pins the spellings that test met only now and then).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainEtcdError } from '../../src/datastore/etcd.js';

const at = 'etcd://127.0.0.1:2379';

describe('explainEtcdError', () => {
  it('TLS to a plain-http server: both the HTTP/2 error and a reset mean "does not speak TLS"', () => {
    for (const raw of [
      '14 UNAVAILABLE: No connection established. Last error: Error: Client network socket disconnected before secure TLS connection was established',
      '14 UNAVAILABLE: No connection established. Last error: Error: 40E7C1E2:error:0A00010B:SSL routines:ssl3_get_record:wrong version number',
      '14 UNAVAILABLE: read ECONNRESET',
    ]) {
      const m = explainEtcdError(at, new Error(raw), true).message;
      assert.match(m, /does not speak TLS/, raw);
      assert.match(m, /drop --etcd-ca/, raw);
      assert.ok(m.startsWith(`${at}: `), m);
    }
  });

  it('a reset without TLS points at --etcd-ca instead', () => {
    const m = explainEtcdError(at, new Error('14 UNAVAILABLE: read ECONNRESET'), false).message;
    assert.match(m, /give --etcd-ca/);
    assert.doesNotMatch(m, /does not speak TLS/);
  });

  it('refused and deadline keep their own sentences', () => {
    assert.match(explainEtcdError(at, new Error('14 UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:2379'), true).message, /connection refused/);
    assert.match(explainEtcdError(at, new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), false).message, /no answer within/);
  });
});
