// Views: a kind the kubernetes: datastore holds only partly, as the union of several list+watch streams, each with its
// own field and/or label selector (docs/kubernetes-datastore.md, "Views"). The agent's Pods are the union of "pods on
// my node" (spec.nodeName) and "gateway pods" (label egw.dev/egress-gateway): SPEC §7, "the agent watches only what it
// needs". Pure: the store (kubernetes.ts) does the HTTP; this file checks the option, builds each view's query and
// decides which of the streams' events reach the watcher.
//
// The union rules:
// - list(kind) lists every view and merges by key (the copy with the highest resourceVersion wins); its revision is
//   the MIN of the views' list revisions. A watch from there may deliver again a change one view's list already
//   covered: harmless, it carries that state (or a newer one). Taking the max would lose the events a view's list
//   missed between the two lists.
// - The union watch keeps per key the newest resourceVersion delivered and which views hold the object. An event at
//   or below what was delivered for its key is dropped: two views deliver the same change twice, and a late stream
//   must not roll an object back (nor bring a deleted one back).
// - A DELETED from one view while another view still holds the object is held back: the object may only have left
//   that view (a real API server sends DELETED when an object stops matching a watch's selector), and the other
//   view's own event for that change follows. Once no view holds the object any more, a DELETED is delivered: this
//   one, or the held one when it is newer (a stream running ahead can bring the real deletion before the late
//   stream's DELETED of an older change; without the held one no DELETED would pass and the object would stay).
// - Holders are seeded from one list of each view when the watch opens (a list's objects are held), and follow each
//   view's events after that. A key no view holds is forgotten once every view has passed its last resourceVersion
//   (events and bookmarks), so the state stays the size of the view, not of the churn.
import { StoreError } from './types.js';
import { kubeResource } from './kubernetes-kinds.js';

/** One list+watch stream of a kind: its selectors go to the API server. */
export interface KubeView {
  fieldSelector?: string;
  labelSelector?: string;
}

/** Per kind, the views whose union the store holds; kinds not named are held whole. */
export type KubeViews = Readonly<Record<string, readonly KubeView[]>>;

/**
 * Checks the option before anything connects: every kind known, every view a non-empty list of objects with string
 * selectors, at least one selector per view (a view without one is the whole kind: leave the kind out instead).
 * The error names the field, e.g. `views.Pod[1].labelSelector`.
 */
export function checkViews(views: unknown): KubeViews | undefined {
  if (views === undefined) return undefined;
  const bad = (where: string, why: string) => new StoreError('Invalid', `kubernetes: datastore option ${where}: ${why}`);
  if (views === null || typeof views !== 'object' || Array.isArray(views)) throw bad('views', 'must be an object mapping kinds to lists of views');
  const out: Record<string, KubeView[]> = {};
  for (const [kind, list] of Object.entries(views as Record<string, unknown>)) {
    try {
      kubeResource(kind);
    } catch (e) {
      throw bad(`views.${kind}`, (e as Error).message);
    }
    if (!Array.isArray(list) || list.length === 0) throw bad(`views.${kind}`, 'must be a non-empty list of {fieldSelector?, labelSelector?}');
    out[kind] = list.map((v: unknown, i) => {
      const where = `views.${kind}[${i}]`;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(where, 'must be an object {fieldSelector?, labelSelector?}');
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) if (k !== 'fieldSelector' && k !== 'labelSelector') throw bad(`${where}.${k}`, 'unknown field (expected fieldSelector or labelSelector)');
      for (const k of ['fieldSelector', 'labelSelector'] as const) {
        if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '')) throw bad(`${where}.${k}`, 'must be a non-empty string');
      }
      if (o.fieldSelector === undefined && o.labelSelector === undefined) throw bad(where, 'has no selector (a view without one is the whole kind: leave the kind out of views)');
      return { ...(o.fieldSelector ? { fieldSelector: o.fieldSelector as string } : {}), ...(o.labelSelector ? { labelSelector: o.labelSelector as string } : {}) };
    });
  }
  return out;
}

/** The query of one view's list or watch; a caller's label selector is ANDed to the view's (comma, as Kubernetes). */
export function viewQuery(view: KubeView | undefined, label?: string): { labelSelector?: string; fieldSelector?: string } {
  const labels = [view?.labelSelector, label].filter((s): s is string => !!s);
  return { ...(labels.length ? { labelSelector: labels.join(',') } : {}), ...(view?.fieldSelector ? { fieldSelector: view.fieldSelector } : {}) };
}

/** What the union needs of a watch event. */
export interface UnionEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  revision: number;
}

interface KeyState<E> {
  /** resourceVersion of the newest event delivered for the key (0: none yet). */
  rv: number;
  /** The views that hold the object now. */
  holders: Set<number>;
  /** The newest DELETED held back while another view still held the object (rules above). */
  held?: E;
}

/** The union of `views` streams of one kind, all watched from `from`: which events to deliver (rules above). */
export class ViewUnion<E extends UnionEvent = UnionEvent> {
  private readonly keys = new Map<string, KeyState<E>>();
  /** Keys no view holds, with the resourceVersion they were last touched at: forgotten once every view passed it. */
  private orphans: { key: string; rv: number }[] = [];
  private readonly progress: number[];
  /** The least progress of all views at the last pruning. */
  private prunedAt: number;

  constructor(
    readonly views: number,
    from: number,
  ) {
    this.progress = new Array<number>(views).fill(from);
    this.prunedAt = from;
  }

  /** The view's list (at the watch's start) holds `key`. */
  hold(view: number, key: string): void {
    this.state(key).holders.add(view);
  }

  /**
   * An event from `view`'s stream, in the order that stream delivers: the event to deliver for it (this one, or a
   * DELETED held back earlier), or undefined.
   */
  accept(view: number, ev: E, key: string): E | undefined {
    const s = this.state(key);
    const rv = ev.revision;
    if (ev.type === 'DELETED') s.holders.delete(view);
    else s.holders.add(view);
    let out: E | undefined;
    if (rv > s.rv) {
      if (ev.type !== 'DELETED' || s.holders.size === 0) out = ev;
      else if (!s.held || rv > s.held.revision) s.held = ev;
    }
    if (!out && s.holders.size === 0 && s.held && s.held.revision > s.rv) out = s.held;
    if (out) {
      s.rv = out.revision;
      if (s.held && s.held.revision <= s.rv) s.held = undefined;
    }
    if (s.holders.size === 0) this.orphans.push({ key, rv: Math.max(rv, s.rv) });
    this.advance(view, rv);
    return out;
  }

  /** The view's stream has seen everything up to `rv` (an event or a bookmark). */
  advance(view: number, rv: number): void {
    if (rv > this.progress[view]) this.progress[view] = rv;
    if (this.orphans.length === 0) return;
    const passed = Math.min(...this.progress);
    if (passed <= this.prunedAt) return;
    this.prunedAt = passed;
    const keep = new Map<string, number>();
    for (const o of this.orphans) {
      const s = this.keys.get(o.key);
      if (!s || s.holders.size > 0) continue;
      const last = Math.max(o.rv, s.rv, keep.get(o.key) ?? 0);
      if (last <= passed) this.keys.delete(o.key);
      else keep.set(o.key, last);
    }
    this.orphans = [...keep].map(([key, rv]) => ({ key, rv }));
  }

  /** How many keys the union tracks (tests, the scale bench: it stays the size of the view). */
  get size(): number {
    return this.keys.size;
  }

  private state(key: string): KeyState<E> {
    let s = this.keys.get(key);
    if (!s) this.keys.set(key, (s = { rv: 0, holders: new Set() }));
    return s;
  }
}
