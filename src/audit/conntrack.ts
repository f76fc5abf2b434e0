// Reading `conntrack -E/-L -o xml,id,ktimestamp` (docs/kernel.md §8): an incremental parser that turns the text, in
// chunks split anywhere, into CtFlow values (src/audit/types.ts). Pure: no I/O; the caller gives the clock.
//
// What conntrack 1.4.7 prints (docs/kernel.md §8): an `<?xml …?>` line and a `<conntrack>` line before the first
// flow, one `<flow>…</flow>` per line, `</conntrack>` at exit. Events carry `type="new|update|destroy"`, dump lines
// (`-L`) carry no type. A DESTROY caused by `conntrack -D` ends with ` [USERSPACE] portid=N` after `</flow>`.
// ICMP tuples carry no type/code/id in this version's XML (an empty `<layer4>`); they are read when present.
//
// A targeted scanner rather than an XML library: the recorder reads up to ~100k flows/s, and the format is the
// fixed, attribute-poor shape above. Unknown elements are skipped, so a newer conntrack with extra fields still reads.
import type { CtCounters, CtFlow, CtTuple } from './types.js';

/**
 * What the parser knows beyond CtFlow (src/audit/types.ts): the zone and the entry's flags. A CtEntry is a CtFlow,
 * so code written against CtFlow takes it unchanged.
 */
export interface CtEntry extends CtFlow {
  /** Conntrack zone (`<zone>`), when not the default zone 0. */
  zone?: number;
  /** `<assured/>`: the entry has seen traffic both ways and is kept under table pressure. */
  assured?: boolean;
  /** `<unreplied/>`: no reply seen (yet). */
  unreplied?: boolean;
  /** `[USERSPACE]` after the flow: the event was caused by a conntrack command (e.g. `conntrack -D`). */
  userspace?: boolean;
}

/** A line the parser could not read: its number (1-based, since the parser was made), why, and its text. */
export interface CtParseError {
  line: number;
  reason: string;
  /** The line, cut to 300 characters. */
  text: string;
}

export interface CtXmlParserOptions {
  /** Milliseconds since the epoch; called once per push (every flow of one chunk was read at that time). */
  now?: () => number;
  /** Called for each malformed line. Without it errors are kept in `errors` (the first 1000; `errorCount` counts all). */
  onError?: (e: CtParseError) => void;
}

const MAX_KEPT_ERRORS = 1000;
/** A flow line is ~0.5–1 KB; a longer one is not conntrack's. */
const MAX_LINE = 64 * 1024;
const MAX_ERROR_TEXT = 300;

/** Lines that frame the flows and carry nothing. */
function isFrame(line: string): boolean {
  return line.startsWith('<?xml') || line === '<conntrack>' || line === '</conntrack>';
}

export class CtXmlParser {
  /** Malformed lines, when no onError was given (the first 1000). */
  readonly errors: CtParseError[] = [];
  /** Every malformed line seen, including those passed to onError. */
  errorCount = 0;
  /** Flows parsed so far. */
  flowCount = 0;
  private rest = '';
  /** Inside an overlong line: what comes until the next newline is dropped. */
  private skipping = false;
  private lineNo = 0;
  private readonly now: () => number;
  private readonly onError?: (e: CtParseError) => void;

  constructor(opts: CtXmlParserOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError;
  }

  /** Feeds a chunk; returns the flows of the lines it completed. Never throws for bad input. */
  push(chunk: string): CtEntry[] {
    const out: CtEntry[] = [];
    const last = chunk.lastIndexOf('\n');
    if (last < 0) {
      this.rest += chunk;
      if (this.rest.length > MAX_LINE) this.overlong();
      return out;
    }
    let data = this.rest.length ? this.rest + chunk.slice(0, last) : chunk.slice(0, last);
    if (this.skipping) {
      // The end of an overlong line: drop it up to its newline.
      this.skipping = false;
      const nl = data.indexOf('\n');
      this.lineNo++;
      data = nl < 0 ? '' : data.slice(nl + 1);
      if (nl < 0) {
        this.rest = chunk.slice(last + 1);
        return out;
      }
    }
    this.rest = chunk.slice(last + 1);
    if (this.rest.length > MAX_LINE) this.overlong();
    const seenAt = this.now();
    let pos = 0;
    for (;;) {
      const nl = data.indexOf('\n', pos);
      const line = nl < 0 ? data.slice(pos) : data.slice(pos, nl);
      this.line(line, seenAt, out);
      if (nl < 0) break;
      pos = nl + 1;
    }
    return out;
  }

  /** The end of the stream: a last line without its newline is read (or reported as truncated). */
  end(): CtEntry[] {
    const out: CtEntry[] = [];
    if (this.skipping) {
      this.skipping = false;
      this.rest = '';
      this.lineNo++;
    }
    if (this.rest.length) {
      const line = this.rest;
      this.rest = '';
      this.line(line, this.now(), out);
    }
    return out;
  }

  private line(raw: string, seenAt: number, out: CtEntry[]): void {
    this.lineNo++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1).trim() : raw.trim();
    if (line === '' || isFrame(line)) return;
    const r = parseFlowLine(line, seenAt);
    if (typeof r === 'string') this.fail(r, line);
    else {
      this.flowCount++;
      out.push(r);
    }
  }

  /** A line longer than any flow: reported once, then dropped up to its newline (memory stays bounded). */
  private overlong(): void {
    if (!this.skipping) this.fail(`line longer than ${MAX_LINE} characters (not conntrack output?)`, this.rest, this.lineNo + 1);
    this.skipping = true;
    this.rest = '';
  }

  private fail(reason: string, line: string, lineNo = this.lineNo): void {
    this.errorCount++;
    const e: CtParseError = { line: lineNo, reason, text: line.length > MAX_ERROR_TEXT ? line.slice(0, MAX_ERROR_TEXT) + '…' : line };
    if (this.onError) this.onError(e);
    else if (this.errors.length < MAX_KEPT_ERRORS) this.errors.push(e);
  }
}

/** Parses a whole text at once (a saved capture, a dump's output). */
export function parseConntrackXml(text: string, opts: CtXmlParserOptions = {}): { flows: CtEntry[]; errors: CtParseError[] } {
  const errors: CtParseError[] = [];
  const p = new CtXmlParser({ now: opts.now, onError: (e) => (errors.push(e), opts.onError?.(e)) });
  const flows = p.push(text);
  for (const f of p.end()) flows.push(f);
  return { flows, errors };
}

// ---- the scanner ------------------------------------------------------------------------------------------------
// conntrack prints the parts of a flow in a fixed order: the original meta (layer3 src/dst, layer4 with ports or
// ICMP fields, counters), the reply meta (the same), the independent meta (state, timeout, mark, zone, use, id,
// flags, timestamp). The scanner cuts the line at the three metas and looks each field up inside its part with
// indexOf, which measured ~1.5x faster than walking every tag (test/audit/conntrack.test.ts has the shapes).

/** Digits of line[from..to) as a number (≤ 16 digits: exact), or NaN. */
function uintAt(line: string, from: number, to: number): number {
  if (to <= from || to - from > 16) return NaN;
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = line.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return v;
}
function nsToMsAt(line: string, from: number, to: number): number {
  if (to - from > 20) return NaN;
  if (to - from <= 6) return uintAt(line, from, to) / 1e6;
  return uintAt(line, from, to - 6) + uintAt(line, to - 6, to) / 1e6;
}

/** A scan of one line: `err` is set by the first failure. */
class Scan {
  err: string | undefined;
  constructor(readonly line: string) {}
  /** Where the text of the last leaf found starts and ends. */
  vFrom = 0;
  vTo = 0;
  /** Finds the leaf `<name>text</name>` (open = `<name>`) first in [from, to); false when absent. Sets vFrom/vTo. */
  leaf(open: string, from: number, to: number): boolean {
    const k = this.line.indexOf(open, from);
    if (k < 0 || k >= to) return false;
    const s = k + open.length;
    const e = this.line.indexOf('<', s);
    if (e < 0 || e >= to || this.line.charCodeAt(e + 1) !== 47) {
      this.err ??= `${open} is not closed`;
      return false;
    }
    this.vFrom = s;
    this.vTo = e;
    return true;
  }
  text(open: string, from: number, to: number): string | undefined {
    return this.leaf(open, from, to) ? this.line.slice(this.vFrom, this.vTo) : undefined;
  }
  num(open: string, from: number, to: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (!this.leaf(open, from, to)) return undefined;
    const v = uintAt(this.line, this.vFrom, this.vTo);
    if (!(v <= max)) {
      this.err ??= `bad ${open} "${this.line.slice(this.vFrom, this.vTo)}"`;
      return undefined;
    }
    return v;
  }
  attr(key: string, from: number, to: number): string | undefined {
    const k = this.line.indexOf(key, from);
    if (k < 0 || k >= to) return undefined;
    const s = k + key.length;
    const e = this.line.indexOf('"', s);
    return e < 0 || e >= to ? undefined : this.line.slice(s, e);
  }
  tuple(from: number, to: number, which: string): { t: CtTuple; c?: CtCounters; zone?: number } | undefined {
    const src = this.text('<src>', from, to);
    const dst = this.text('<dst>', from, to);
    if (src === undefined || dst === undefined) {
      this.err ??= `the ${which} tuple has no <src>/<dst>`;
      return undefined;
    }
    const l4 = this.line.indexOf('<layer4 ', from);
    if (l4 < 0 || l4 >= to) {
      this.err ??= `the ${which} tuple has no <layer4>`;
      return undefined;
    }
    const l4e = this.line.indexOf('>', l4);
    const num = this.attr(' protonum="', l4, l4e);
    const pname = this.attr(' protoname="', l4, l4e);
    const proto = num === undefined ? NaN : uintAt(num, 0, num.length);
    if (pname === undefined || !(proto <= 255)) {
      this.err ??= `<layer4> without protonum/protoname`;
      return undefined;
    }
    const t: CtTuple = { src, dst, proto, protoName: pname };
    let l4end = this.line.indexOf('</layer4>', l4e);
    if (l4end < 0 || l4end > to) l4end = l4e; // <layer4 …/>
    if (l4end > l4e + 1) {
      const sport = this.num('<sport>', l4e, l4end, 65535);
      if (sport !== undefined) t.sport = sport;
      const dport = this.num('<dport>', l4e, l4end, 65535);
      if (dport !== undefined) t.dport = dport;
      if (sport === undefined && dport === undefined) {
        const type = this.num('<type>', l4e, l4end);
        const code = this.num('<code>', l4e, l4end);
        const id = this.num('<id>', l4e, l4end);
        if (type !== undefined || code !== undefined || id !== undefined) {
          if (type === undefined || code === undefined || id === undefined) this.err ??= `the ${which} tuple has only part of ICMP type/code/id`;
          else t.icmp = { type, code, id };
        }
      }
    }
    const out: { t: CtTuple; c?: CtCounters; zone?: number } = { t };
    const packets = this.num('<packets>', l4end, to);
    const bytes = this.num('<bytes>', l4end, to);
    if (packets !== undefined && bytes !== undefined) out.c = { packets, bytes };
    const zone = this.num('<zone>', l4end, to);
    if (zone !== undefined) out.zone = zone;
    return out;
  }
}

export function parseFlowLine(line: string, seenAt: number): CtEntry | string {
  if (!line.startsWith('<flow')) return 'not a <flow> line';
  const close = line.lastIndexOf('</flow>');
  if (close < 0) return 'no </flow> (truncated line?)';
  let userspace = false;
  if (close + 7 < line.length) {
    const tail = line.slice(close + 7).trim();
    if (tail !== '' && !tail.startsWith('[USERSPACE]')) return `unexpected text after </flow>: ${tail.slice(0, 40)}`;
    userspace = tail !== '';
  }
  const gt = line.indexOf('>');
  let type: CtFlow['type'];
  if (line.charCodeAt(5) === 62) type = 'dump';
  else {
    const s = new Scan(line);
    const ty = s.attr(' type="', 0, gt);
    if (ty === 'new' || ty === 'update' || ty === 'destroy') type = ty;
    else return `unknown flow type "${ty ?? ''}"`;
  }
  const o0 = line.indexOf('<meta direction="original">', gt);
  const r0 = line.indexOf('<meta direction="reply">', o0);
  const i0 = line.indexOf('<meta direction="independent">', r0);
  if (o0 < 0 || r0 < 0 || i0 < 0 || i0 > close) return 'a <meta direction="original|reply|independent"> is missing';
  const s = new Scan(line);
  const o = s.tuple(o0, r0, 'original');
  const r = o && s.tuple(r0, i0, 'reply');
  if (!o || !r) return s.err!;
  const id = s.num('<id>', i0, close, 0xffffffff);
  if (s.err) return s.err;
  if (id === undefined) return 'no <id> (run conntrack with -o xml,id)';
  const f: CtEntry = { type, id, orig: o.t, reply: r.t, seenAt };
  if (o.c) f.origCounters = o.c;
  if (r.c) f.replyCounters = r.c;
  const state = s.text('<state>', i0, close);
  if (state !== undefined) f.state = state;
  const mark = s.num('<mark>', i0, close);
  if (mark !== undefined) f.mark = mark;
  const zone = s.num('<zone>', i0, close) ?? o.zone;
  if (zone !== undefined && zone !== 0) f.zone = zone;
  const ts = line.indexOf('<timestamp>', i0);
  if (ts >= 0 && ts < close) {
    if (s.leaf('<start>', ts, close)) f.start = nsToMsAt(line, s.vFrom, s.vTo);
    if (s.leaf('<stop>', ts, close)) f.stop = nsToMsAt(line, s.vFrom, s.vTo);
    if (Number.isNaN(f.start) || Number.isNaN(f.stop)) return `bad timestamp ${Number.isNaN(f.start) ? '<start>' : '<stop>'} in "${line.slice(ts, line.indexOf('</timestamp>', ts))}"`;
  }
  if (s.err) return s.err;
  if (line.indexOf('<assured/>', i0) > 0) f.assured = true;
  if (line.indexOf('<unreplied/>', i0) > 0) f.unreplied = true;
  if (userspace) f.userspace = true;
  return f;
}
