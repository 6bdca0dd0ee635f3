/**
 * `crdt.merge.ops` of the replication suite: remote updates merged per second by the
 * hand-written CRDTs, against Automerge and Yjs applying the same updates. One replica makes
 * the updates (adds and removes on a set; sets and deletes on a map), each update's change is
 * captured as it would travel (our delta as JSON text, Yjs's update bytes, Automerge's change
 * bytes), and a second replica applies them one by one: what is timed is that second replica
 * (decode, check, merge), fresh for each round.
 */

import { ManualClock } from '../../core/clock.js';
import { HybridLogicalClock } from '../../replication/crdt/hlc.js';
import { OrSet, orSetType } from '../../replication/crdt/or-set.js';
import { LwwMap, lwwMapType } from '../../replication/crdt/registers.js';
import { type BenchContext, type BenchResult, interleave, result } from '../harness.js';

type Kind = 'set' | 'map';

/** Update i: element/key `e<k>`, removed/deleted on every fourth update, otherwise added/set. */
function op(i: number, universe: number): { key: string; remove: boolean; value: number } {
  const k = (Math.imul(i, 2654435761) >>> 0) % universe;
  return { key: `e${k}`, remove: i % 4 === 3, value: i };
}

function oursUpdates(kind: Kind, n: number, universe: number): string[] {
  const out: string[] = [];
  if (kind === 'set') {
    const s = new OrSet('a');
    for (let i = 0; i < n; i++) {
      const { key, remove } = op(i, universe);
      out.push(JSON.stringify(remove ? s.remove(key) : s.add(key)));
    }
  } else {
    const m = new LwwMap<number>();
    const hlc = new HybridLogicalClock({ node: 'a', clock: new ManualClock(1) });
    for (let i = 0; i < n; i++) {
      const { key, remove, value } = op(i, universe);
      out.push(JSON.stringify(remove ? m.delete(key, hlc) : m.set(key, value, hlc)));
    }
  }
  return out;
}

async function yjsUpdates(kind: Kind, n: number, universe: number): Promise<Uint8Array[]> {
  const Y = await import('yjs');
  const doc = new Y.Doc();
  const out: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => out.push(u));
  const m = doc.getMap<unknown>('m');
  for (let i = 0; i < n; i++) {
    const { key, remove, value } = op(i, universe);
    if (remove) m.delete(key);
    else m.set(key, kind === 'set' ? true : value);
  }
  doc.destroy();
  return out;
}

async function automergeChanges(kind: Kind, n: number, universe: number): Promise<Uint8Array[]> {
  const A = await import('@automerge/automerge');
  let doc = A.from<{ m: Record<string, unknown> }>({ m: {} });
  const out: Uint8Array[] = [A.getLastLocalChange(doc)!];
  for (let i = 0; i < n; i++) {
    const { key, remove, value } = op(i, universe);
    doc = A.change(doc, (d) => {
      if (remove) delete d.m[key];
      else d.m[key] = kind === 'set' ? true : value;
    });
    out.push(A.getLastLocalChange(doc)!);
  }
  return out;
}

async function measure(kind: Kind, ctx: BenchContext): Promise<BenchResult> {
  const n = ctx.quick ? 3_000 : 10_000;
  const universe = 1_000;
  const rounds = ctx.quick ? 3 : 5;
  const ours = oursUpdates(kind, n, universe);
  const yjs = await yjsUpdates(kind, n, universe);
  const am = await automergeChanges(kind, n, universe);
  const Y = await import('yjs');
  const A = await import('@automerge/automerge');
  const perSecond = (start: bigint, count: number) =>
    count / (Number(process.hrtime.bigint() - start) / 1e9);
  const expected = kind === 'set' ? new OrSet('x') : new LwwMap();
  for (const d of ours) expected.merge(JSON.parse(d));
  const size = Object.keys(expected.value()).length;
  ctx.progress(`crdt.merge.ops (${kind}): ${n} updates, ${rounds} rounds`);
  const figures = await interleave(
    {
      ours: async () => {
        const type = kind === 'set' ? orSetType : lwwMapType;
        const b = kind === 'set' ? new OrSet('b') : new LwwMap();
        const t = process.hrtime.bigint();
        // Each delta is parsed, checked by the type (as a replica does with wire data) and merged.
        for (const d of ours) b.merge(type.parse(JSON.parse(d)) as never);
        const r = perSecond(t, ours.length);
        if (Object.keys(b.value()).length !== size) throw new Error('our replica diverged');
        return r;
      },
      yjs: async () => {
        const doc = new Y.Doc();
        const t = process.hrtime.bigint();
        for (const u of yjs) Y.applyUpdate(doc, u);
        const r = perSecond(t, yjs.length);
        if (doc.getMap('m').size !== size) throw new Error('the Yjs replica diverged');
        doc.destroy();
        return r;
      },
      automerge: async () => {
        let doc = A.init<{ m: Record<string, unknown> }>();
        const t = process.hrtime.bigint();
        for (const c of am) [doc] = A.applyChanges(doc, [c]);
        const r = perSecond(t, am.length);
        if (Object.keys(doc.m).length !== size) throw new Error('the Automerge replica diverged');
        return r;
      },
    },
    rounds,
  );
  const faster = figures.yjs >= figures.automerge ? 'yjs' : 'automerge';
  return result({
    id: kind === 'set' ? 'crdt.merge.ops' : 'crdt.merge.ops.map',
    metric:
      kind === 'set'
        ? 'remote set updates merged per second (OR-Set; peers: a map used as a set)'
        : 'remote map updates merged per second (LWW-Map)',
    unit: 'merges/s',
    ours: Math.round(figures.ours),
    peer: { name: faster === 'yjs' ? 'Yjs 13' : 'Automerge 3', value: Math.round(figures[faster]) },
    higherIsBetter: true,
    params: {
      updates: n,
      universe,
      removeEvery: 4,
      rounds,
      yjs: Math.round(figures.yjs),
      automerge: Math.round(figures.automerge),
      ours: 'JSON text delta: JSON.parse, type.parse (shape check), merge',
      peers: 'Yjs applyUpdate of each update; Automerge applyChanges of each change',
    },
  });
}

/** The `crdt.merge.ops` results: OR-Set and LWW-Map against the faster of Yjs and Automerge. */
export async function crdtMergeResults(ctx: BenchContext): Promise<BenchResult[]> {
  return [await measure('set', ctx), await measure('map', ctx)];
}
