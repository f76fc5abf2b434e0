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
      return out;
    }
    const data = this.rest.length ? this.rest + chunk.slice(0, last) : chunk.slice(0, last);
    this.rest = chunk.slice(last + 1);
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

  private fail(reason: string, line: string): void {
    this.errorCount++;
    const e: CtParseError = { line: this.lineNo, reason, text: line.length > MAX_ERROR_TEXT ? line.slice(0, MAX_ERROR_TEXT) + '…' : line };
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

/** Where a value goes while scanning one flow. */
const enum Sec {
  None,
  Orig,
  Reply,
  Indep,
}

interface TupleDraft {
  src?: string;
  dst?: string;
  l3?: string;
  proto?: number;
  protoName?: string;
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  packets?: number;
  bytes?: number;
}

/** The value of attribute `name` inside a tag's text (`<layer4 protonum="6" protoname="tcp">`), or undefined. */
function attr(tag: string, name: string): string | undefined {
  const k = tag.indexOf(` ${name}="`);
  if (k < 0) return undefined;
  const from = k + name.length + 3;
  const to = tag.indexOf('"', from);
  return to < 0 ? undefined : tag.slice(from, to);
}

/** A non-negative decimal integer (no sign, no spaces, at most 2^53), or NaN. */
function uint(s: string): number {
  if (s.length === 0 || s.length > 16) return NaN;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return NaN;
  }
  return Number(s);
}

/** Kernel ns since the epoch (up to 20 digits, beyond 2^53) → ms as a float, exact to the µs. */
function nsToMs(s: string): number {
  if (s.length === 0 || s.length > 20) return NaN;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return NaN;
  }
  if (s.length <= 6) return Number(s) / 1e6;
  return Number(s.slice(0, -6)) + Number(s.slice(-6)) / 1e6;
}

const PORT_MAX = 65535;

function tuple(d: TupleDraft, which: string): CtTuple | string {
  if (d.src === undefined || d.dst === undefined) return `the ${which} tuple has no <src>/<dst>`;
  if (d.proto === undefined || d.protoName === undefined) return `the ${which} tuple has no <layer4 protonum protoname>`;
  const t: CtTuple = { src: d.src, dst: d.dst, proto: d.proto, protoName: d.protoName };
  if (d.sport !== undefined) t.sport = d.sport;
  if (d.dport !== undefined) t.dport = d.dport;
  if (d.icmpType !== undefined || d.icmpCode !== undefined || d.icmpId !== undefined) {
    if (d.icmpType === undefined || d.icmpCode === undefined || d.icmpId === undefined) return `the ${which} tuple has only part of ICMP type/code/id`;
    t.icmp = { type: d.icmpType, code: d.icmpCode, id: d.icmpId };
  }
  return t;
}

function counters(d: TupleDraft): CtCounters | undefined {
  return d.packets !== undefined && d.bytes !== undefined ? { packets: d.packets, bytes: d.bytes } : undefined;
}

/**
 * One `<flow …>…</flow>` line → a CtEntry, or the reason it cannot be read. Tags are walked in order; leaf elements
 * (`<src>10.9.1.2</src>`) give their text to the section and block they are in (original / reply / independent meta,
 * layer3 / layer4 / counters / timestamp).
 */
export function parseFlowLine(line: string, seenAt: number): CtEntry | string {
  if (!line.startsWith('<flow')) return 'not a <flow> line';
  const close = line.lastIndexOf('</flow>');
  if (close < 0) return 'no </flow> (truncated line?)';
  const tail = line.slice(close + 7).trim();
  if (tail !== '' && !tail.startsWith('[USERSPACE]')) return `unexpected text after </flow>: ${tail.slice(0, 40)}`;

  const gt = line.indexOf('>');
  const flowTag = line.slice(0, gt + 1);
  const typeAttr = attr(flowTag, 'type');
  let type: CtFlow['type'];
  if (typeAttr === undefined) type = 'dump';
  else if (typeAttr === 'new' || typeAttr === 'update' || typeAttr === 'destroy') type = typeAttr;
  else return `unknown flow type "${typeAttr}"`;

  const orig: TupleDraft = {};
  const reply: TupleDraft = {};
  let sec = Sec.None;
  let block = ''; // layer3 | layer4 | counters | timestamp | ''
  let id: number | undefined;
  let state: string | undefined;
  let mark: number | undefined;
  let zone: number | undefined;
  let start: number | undefined;
  let stop: number | undefined;
  let assured = false;
  let unreplied = false;

  let pos = gt + 1;
  while (pos < close) {
    const lt = line.indexOf('<', pos);
    if (lt < 0 || lt >= close) break;
    const end = line.indexOf('>', lt);
    if (end < 0 || end > close) return 'a tag is not closed';
    pos = end + 1;
    const c1 = line.charCodeAt(lt + 1);
    if (c1 === 47 /* / */) {
      const name = line.slice(lt + 2, end);
      if (name === 'meta') sec = Sec.None;
      else if (name === block) block = '';
      continue;
    }
    // The tag's name: up to a space, '/' or '>'.
    let ne = lt + 1;
    while (ne < end) {
      const c = line.charCodeAt(ne);
      if (c === 32 || c === 47) break;
      ne++;
    }
    const name = line.slice(lt + 1, ne);
    const selfClosing = line.charCodeAt(end - 1) === 47;
    if (name === 'meta') {
      const dir = attr(line.slice(lt, end + 1), 'direction');
      sec = dir === 'original' ? Sec.Orig : dir === 'reply' ? Sec.Reply : dir === 'independent' ? Sec.Indep : Sec.None;
      if (sec === Sec.None) return `unknown meta direction "${dir ?? ''}"`;
      block = '';
      continue;
    }
    if (selfClosing) {
      if (sec === Sec.Indep) {
        if (name === 'assured') assured = true;
        else if (name === 'unreplied') unreplied = true;
      }
      continue;
    }
    if (name === 'layer3' || name === 'layer4' || name === 'counters' || name === 'timestamp') {
      block = name;
      if (name !== 'counters' && name !== 'timestamp' && sec !== Sec.Orig && sec !== Sec.Reply) return `<${name}> outside an original/reply meta`;
      if (name === 'layer3' || name === 'layer4') {
        const tag = line.slice(lt, end + 1);
        const d = sec === Sec.Orig ? orig : reply;
        const num = attr(tag, 'protonum');
        const pname = attr(tag, 'protoname');
        if (num === undefined || pname === undefined) return `<${name}> without protonum/protoname`;
        if (name === 'layer3') d.l3 = pname;
        else {
          const n = uint(num);
          if (!(n <= 255)) return `bad layer4 protonum "${num}"`;
          d.proto = n;
          d.protoName = pname;
        }
      }
      continue;
    }
    // A leaf: text up to the next '<', which must close it. An empty element (`<x></x>`) is skipped.
    const tl = line.indexOf('<', pos);
    if (tl < 0 || tl > close) return `<${name}> is not closed`;
    if (tl === pos) continue; // no text: the next tag is read as usual (a closing tag, or a child of an unknown element)
    const text = line.slice(pos, tl);
    if (!line.startsWith(`</${name}>`, tl)) continue; // mixed content of an unknown element: skip the text
    pos = tl + name.length + 3;
    if (sec === Sec.Orig || sec === Sec.Reply) {
      const d = sec === Sec.Orig ? orig : reply;
      if (block === 'layer3') {
        if (name === 'src') d.src = text;
        else if (name === 'dst') d.dst = text;
      } else if (block === 'layer4') {
        const v = uint(text);
        if (name === 'sport' || name === 'dport') {
          if (!(v <= PORT_MAX)) return `bad <${name}> "${text}"`;
          if (name === 'sport') d.sport = v;
          else d.dport = v;
        } else if (name === 'type' || name === 'code' || name === 'id') {
          if (Number.isNaN(v)) return `bad ICMP <${name}> "${text}"`;
          if (name === 'type') d.icmpType = v;
          else if (name === 'code') d.icmpCode = v;
          else d.icmpId = v;
        }
      } else if (block === 'counters') {
        const v = uint(text);
        if (name === 'packets' || name === 'bytes') {
          if (Number.isNaN(v)) return `bad <${name}> "${text}"`;
          if (name === 'packets') d.packets = v;
          else d.bytes = v;
        }
      } else if (name === 'zone') {
        const v = uint(text);
        if (Number.isNaN(v)) return `bad <zone> "${text}"`;
        zone = v;
      }
    } else if (sec === Sec.Indep) {
      if (block === 'timestamp') {
        if (name === 'start' || name === 'stop') {
          const ms = nsToMs(text);
          if (Number.isNaN(ms)) return `bad timestamp <${name}> "${text}"`;
          if (name === 'start') start = ms;
          else stop = ms;
        }
      } else if (name === 'id') {
        const v = uint(text);
        if (Number.isNaN(v)) return `bad <id> "${text}"`;
        id = v;
      } else if (name === 'state') state = text;
      else if (name === 'mark') {
        const v = uint(text);
        if (Number.isNaN(v)) return `bad <mark> "${text}"`;
        mark = v;
      } else if (name === 'zone') {
        const v = uint(text);
        if (Number.isNaN(v)) return `bad <zone> "${text}"`;
        zone = v;
      }
    }
  }

  if (id === undefined) return 'no <id> (run conntrack with -o xml,id)';
  const o = tuple(orig, 'original');
  if (typeof o === 'string') return o;
  const r = tuple(reply, 'reply');
  if (typeof r === 'string') return r;
  const f: CtEntry = { type, id, orig: o, reply: r, seenAt };
  const oc = counters(orig);
  if (oc) f.origCounters = oc;
  const rc = counters(reply);
  if (rc) f.replyCounters = rc;
  if (start !== undefined) f.start = start;
  if (stop !== undefined) f.stop = stop;
  if (state !== undefined) f.state = state;
  if (mark !== undefined) f.mark = mark;
  if (zone !== undefined && zone !== 0) f.zone = zone;
  if (assured) f.assured = true;
  if (unreplied) f.unreplied = true;
  if (tail !== '') f.userspace = true;
  return f;
}
