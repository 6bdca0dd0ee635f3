import { randomUUID } from 'node:crypto';
import { orSetType, pnCounterType, type RegionReplica } from '../../replication/index.js';
import type { Demo } from '../feature.js';

/** Poll `probe` every `intervalMs` until it returns a value, or undefined after `timeoutMs`. */
async function until<T>(
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<T | undefined> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return undefined;
}

/**
 * A partition between the two regions: the demonstration's own wishlist and view counter are
 * changed on both sides while the link is cut (a course removed in one region and added again
 * in the other, different courses added, views counted in both), then the link heals and
 * anti-entropy rounds run until both regions hold the same states.
 */
export function multiMasterPartitionDemo(regions: () => Promise<RegionReplica[]>): Demo {
  return {
    id: 'multi-master-partition',
    title: 'Partition two regions, write on both sides, heal',
    description:
      'Cuts the link between the two regions, changes one wishlist and one view counter on both sides (one region removes a course while the other adds it again), heals the link and lets anti-entropy repair what was lost. Both regions end with the same wishlist: the concurrent add wins over the remove, and every view is counted once.',
    feature: 'multi-master',
    async run() {
      const [eu, us] = await regions();
      if (!eu || !us) throw new Error('the multi-master demonstration needs two regions');
      const id = randomUUID().slice(0, 8);
      const list = `wishlist:demo-${id}`;
      const views = `views:demo-${id}`;
      const steps: string[] = [];
      const [a, b, c] = ['course-a', 'course-b', 'course-c'].map((x) => `${x}-${id}`) as [
        string,
        string,
        string,
      ];
      await eu.update(list, orSetType, (s) => s.add(a));
      await until(async () => (await us.read(list)) !== undefined, 10_000);
      steps.push(`${eu.region} adds ${a}; it reaches ${us.region} through outbox, relay and inbox`);
      const before = eu.stats().dropped + us.stats().dropped;
      eu.partition(true);
      steps.push(`the link is cut: everything ${eu.region} sends or receives is lost`);
      await eu.update(list, orSetType, (s) => s.remove(a));
      await eu.update(list, orSetType, (s) => s.add(c));
      await eu.update(views, pnCounterType, (n) => n.add(3));
      await us.update(list, orSetType, (s) => s.add(a));
      await us.update(list, orSetType, (s) => s.add(b));
      await us.update(views, pnCounterType, (n) => n.add(2));
      const euSide = (await eu.read(list))?.value as string[];
      const usSide = (await us.read(list))?.value as string[];
      steps.push(
        `during the partition ${eu.region} removes ${a} and adds ${c}, ${us.region} adds ${a} again and ${b}; views +3 in ${eu.region}, +2 in ${us.region}`,
      );
      steps.push(
        `${eu.region} sees [${euSide.join(', ')}], ${us.region} sees [${usSide.join(', ')}]`,
      );
      // Let the relays try to send what the partition is to lose.
      await new Promise((r) => setTimeout(r, 300));
      eu.partition(false);
      const dropped = eu.stats().dropped + us.stats().dropped - before;
      steps.push(`the link heals; ${dropped} messages were lost`);
      const repairsBefore = eu.stats().repairs + us.stats().repairs;
      let rounds = 0;
      const done = await until(
        async () => {
          rounds++;
          await eu.antiEntropy();
          await us.antiEntropy();
          await new Promise((r) => setTimeout(r, 50));
          const [x, y] = await Promise.all([eu.read(list), us.read(list)]);
          const [vx, vy] = await Promise.all([eu.read(views), us.read(views)]);
          const same =
            JSON.stringify(x?.value) === JSON.stringify(y?.value) && vx?.value === vy?.value;
          return same && vx?.value === 5 && { list: x?.value as string[], views: vx.value };
        },
        15_000,
        100,
      );
      const repairs = eu.stats().repairs + us.stats().repairs - repairsBefore;
      const expected = [a, b, c].sort();
      const ok = done !== undefined && JSON.stringify(done.list) === JSON.stringify(expected);
      steps.push(
        done
          ? `after ${rounds} anti-entropy round(s) both regions hold [${done.list.join(', ')}] and ${done.views} views`
          : 'the regions did not converge in 15 s',
      );
      return {
        ok,
        summary: ok
          ? `Both regions converged after the partition: ${a} stayed (the add made concurrently with the remove wins) and the 5 views were counted once.`
          : 'The regions did not converge as expected.',
        figures: [
          { label: 'messages lost in the partition', value: dropped },
          { label: 'anti-entropy rounds', value: rounds },
          { label: 'objects repaired', value: repairs },
          { label: 'views counted', value: (done?.views as number | undefined) ?? '-' },
        ],
        steps,
      };
    },
  };
}
