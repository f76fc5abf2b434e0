import { compile, evaluateTree, parseSelector, type Labels } from '../src/selector/index.js';
const keys = ['app','tier','env','team','egress-code','version','pod-template-hash','zone','x1','x2'];
function mk(n: number, mode: string): Labels[] {
  const out: Labels[] = [];
  let s = 1;
  const r = () => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s / 0x7fffffff; };
  for (let i = 0; i < n; i++) {
    let ks = keys.filter(() => r() < 0.7);
    if (mode !== 'sorted') ks = ks.sort(() => r() - 0.5);
    const e = ks.map((k) => [k, 'v' + Math.floor(r() * 3)] as [string, string]);
    let o: any = Object.fromEntries(e);
    if (mode === 'dict') { o = Object.create(null); for (const [k, v] of e) o[k] = v; o.__y = 1; delete o.__y; }
    out.push(o);
  }
  return out;
}
const forIn = [
  new Function('l', 'var a; for (var k in l) { if (k === "app") a = l[k]; } return a === "v1";'),
  new Function('l', 'var a, b; for (var k in l) { switch (k) { case "tier": a = l[k]; break; case "env": b = l[k]; break; } } return (a === "v0" || a === "v2") && b !== "v1";'),
  new Function('l', 'var a, b; for (var k in l) { switch (k) { case "team": a = l[k]; break; case "egress-code": b = l[k]; break; } } return typeof a === "string" || b === "v2";'),
  new Function('l', 'var a, b; for (var k in l) { switch (k) { case "zone": a = l[k]; break; case "version": b = l[k]; break; } } return typeof a !== "string" && (typeof b === "string" && b.startsWith("v"));'),
] as Array<(l: Labels) => boolean>;
const sels = ["app == 'v1'", "tier in {'v0','v2'} && env != 'v1'", "has(team) || egress-code == 'v2'", "!has(zone) && version starts with 'v'"].map(s => parseSelector(s).ast);
for (const mode of ['shuffled', 'sorted', 'dict']) {
  const ls = mk(1000, mode);
  const c = sels.map(compile); const w = sels.map(a => (l: Labels) => evaluateTree(a, l));
  for (const [name, fns] of [['compiled', c], ['tree', w], ['forin', forIn]] as const) {
    let best = Infinity, hits = 0;
    for (let r = 0; r < 30; r++) { const t = performance.now(); for (const f of fns) for (const l of ls) if (f(l)) hits++; best = Math.min(best, performance.now() - t); }
    console.log(mode, name, Math.round(fns.length * ls.length / best / 1000), 'M/s', hits);
  }
}
