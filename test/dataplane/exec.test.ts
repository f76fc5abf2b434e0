// The Runner: command input reaches tools that read stdin by path (nft -f -), failures carry the result.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommandError, localRunner } from '../../src/dataplane/exec.js';

test('input is readable through /dev/stdin (as nft -f - opens it) and through fd 0', async () => {
  const r = localRunner();
  assert.equal((await r.run(['sh', '-c', 'cat /dev/stdin'], { input: 'a\nb\n' })).stdout, 'a\nb\n');
  assert.equal((await r.run(['cat'], { input: 'x'.repeat(200_000) })).stdout.length, 200_000);
  assert.equal((await r.run(['cat'])).stdout, '');
});

test('a failing command rejects with CommandError unless allowFailure', async () => {
  const r = localRunner();
  await assert.rejects(r.run(['sh', '-c', 'echo oops >&2; exit 3']), (e: unknown) => e instanceof CommandError && e.result.code === 3 && /oops/.test(e.message));
  assert.equal((await r.run(['sh', '-c', 'exit 4'], { allowFailure: true })).code, 4);
});
