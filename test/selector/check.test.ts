// `egw selector check`: JSON lines in, JSON lines out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PassThrough, Readable, Writable } from 'node:stream';
import { runSelectorCheck } from '../../src/selector/check.js';

async function run(input: string | string[]): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const code = await runSelectorCheck(Readable.from(Array.isArray(input) ? input : [input]), output);
  return { code, out: chunks.join('') };
}

describe('runSelectorCheck', () => {
  it('answers each line in order with the exact JSON', async () => {
    const input = [
      `{"selector": "egress-code == 'red' && tier in {'b','a','b'}", "labels": {"egress-code": "red", "tier": "a"}}`,
      `{"selector": "egress-code == 'red'", "labels": {"egress-code": "blue"}}`,
      `{"selector": "has(projectcalico.org/name) || !has(x)"}`,
      ``,
      `   `,
      `{"selector": "egress-code = 'red'", "labels": {}}`,
      `not json`,
      `{"labels": {"a": "b"}}`,
      `{"selector": 42}`,
      `{"selector": "a == 'b'", "labels": {"a": 1}}`,
      `{"selector": "a == 'b'", "labels": ["a"]}`,
      `{"selector": "a == 'b'", "label": {"a": "b"}}`,
      `["a == 'b'"]`,
      `{"selector": "", "labels": {}}`,
      `{"selector": "a != 'b'", "labels": {}}`,
    ].join('\n');
    const { code, out } = await run(`${input}\n`);
    assert.equal(code, 0);
    const lines = out.split('\n');
    // V8's wording of JSON.parse errors varies between Node versions: check that line by its stable prefix.
    assert.ok(lines[4].startsWith('{"error":"line 7: not valid JSON ('), lines[4]);
    lines[4] = '<json error>';
    assert.deepEqual(lines, [
      `{"canonical":"(egress-code == \\"red\\" && tier in {\\"a\\", \\"b\\"})","matches":true}`,
      `{"canonical":"egress-code == \\"red\\"","matches":false}`,
      `{"canonical":"(has(projectcalico.org/name) || !has(x))"}`,
      `{"error":"selector \\"egress-code = 'red'\\": unexpected \\"=\\" at column 13; expected \\"==\\", \\"!=\\", \\"in\\", \\"not in\\", \\"contains\\", \\"starts with\\" or \\"ends with\\""}`,
      '<json error>',
      `{"error":"line 8: missing \\"selector\\""}`,
      `{"error":"line 9: \\"selector\\" must be a string, not a number"}`,
      `{"error":"line 10: \\"labels\\" must be an object of strings; label \\"a\\" is a number"}`,
      `{"error":"line 11: \\"labels\\" must be an object of strings, not an array"}`,
      `{"error":"line 12: unknown field \\"label\\"; expected \\"selector\\" and optionally \\"labels\\""}`,
      `{"error":"line 13: expected a JSON object {\\"selector\\": \\"...\\", \\"labels\\": {...}}"}`,
      `{"canonical":"all()","matches":true}`,
      `{"canonical":"a != \\"b\\"","matches":true}`,
      ``,
    ]);
  });

  it('handles CRLF, a last line without newline, and lines split across chunks', async () => {
    const { code, out } = await run([`{"selector": "a == 'b'", "lab`, `els": {"a": "b"}}\r\n{"selector":`, ` "has(a)"}`]);
    assert.equal(code, 0);
    assert.equal(out, `{"canonical":"a == \\"b\\"","matches":true}\n{"canonical":"has(a)"}\n`);
  });

  it('a selector with a newline inside (JSON-escaped) is an error naming the column', async () => {
    const { out } = await run(`{"selector": "a == 'b'\\n&& has(c)"}\n`);
    const line = JSON.parse(out) as { error: string };
    assert.match(line.error, /newline \(U\+000A\) at column 9/);
  });

  it('empty input writes nothing', async () => {
    assert.deepEqual(await run(''), { code: 0, out: '' });
  });

  it('waits for a slow output (backpressure) and keeps order', async () => {
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ selector: `k == '${i}'`, labels: { k: String(i % 2) } }));
    const pass = new PassThrough({ highWaterMark: 16 });
    const collected: string[] = [];
    const drained = (async () => {
      for await (const chunk of pass) {
        collected.push(String(chunk));
        await new Promise((r) => setImmediate(r));
      }
    })();
    await runSelectorCheck(Readable.from([lines.join('\n')]), pass);
    pass.end();
    await drained;
    const out = collected.join('').trimEnd().split('\n');
    assert.equal(out.length, 200);
    for (let i = 0; i < 200; i++) {
      assert.equal(out[i], JSON.stringify({ canonical: `k == "${i}"`, matches: i < 2 }));
    }
  });
});
