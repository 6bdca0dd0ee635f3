import { check, describe } from './client.js';
import { expectStatus, field, need, type Step, type TourState } from './tour-support.js';

/** Polls `probe` every 100 ms until it returns a value, for at most `ms`; undefined after that. */
async function within<T>(ms: number, probe: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await probe();
    if (got !== undefined || Date.now() > deadline) return got;
    await new Promise((done) => setTimeout(done, 100));
  }
}

const courseOf = (s: TourState) => need(s.course, 'the course').id;

/** The tour's steps for data spread over several databases: shards, regions, a quorum. */
export const distributionSteps: Step[] = [
  {
    id: 'sharding',
    title: 'Give the student an email: one shard holds the profile, an index table finds it',
    pattern: 'sharding · index table',
    what: 'Student profiles live on the shard their id hashes to. Looking a student up by email would have to ask every shard, so a unique index table, itself sharded by email, answers from one shard; a second student claiming the same email is refused on whichever shard the profiles live.',
    dashboard: 'Sharding: slots and rows per shard, index lag',
    async run(s) {
      const student = need(s.student, 'the student key');
      const other = need(s.otherStudent, 'the other student key');
      const email = `${student.subject}@tour.example`;
      const put = await s.client.call('PUT', `/api/sharding/students/${student.subject}`, {
        key: student,
        json: { email, name: `Tour student ${s.run}` },
      });
      expectStatus(put, 200, `PUT /api/sharding/students/${student.subject}`);
      const found = await within(15_000, async () => {
        const r = await s.client.call(
          'GET',
          `/api/sharding/students?email=${encodeURIComponent(email)}`,
          { key: s.admin },
        );
        expectStatus(r, 200, 'GET /api/sharding/students?email=');
        const students = field<{ id: string }[]>(r, 'students');
        return students.length > 0 ? students : undefined;
      });
      check(
        found?.length === 1 && found[0]!.id === student.subject,
        `the index table to find ${student.subject} by email`,
        () => JSON.stringify(found ?? []),
      );
      const taken = await s.client.call('PUT', `/api/sharding/students/${other.subject}`, {
        key: other,
        json: { email, name: 'Someone else' },
      });
      check(
        taken.status === 409 && describe(taken).includes('EMAIL_TAKEN'),
        'the same email for another student to be refused with 409 EMAIL_TAKEN',
        () => describe(taken),
      );
      const st = await s.client.call('GET', '/api/sharding/status', { key: s.admin });
      expectStatus(st, 200, 'GET /api/sharding/status');
      const shards = field<{ id: string; slots: number }[]>(st, 'shards') ?? [];
      return [
        `${student.subject}'s profile written on its shard; found by ${email} through the index table`,
        `${other.subject} claiming the same email: 409 EMAIL_TAKEN, nothing written`,
        `slots per shard: ${shards.map((x) => `${x.id} ${x.slots}`).join(', ')}`,
      ];
    },
  },
  {
    id: 'multi-master',
    title: 'Add to a wishlist in one region, read it in the other',
    pattern: 'multi-master replication · CRDTs',
    what: 'Two regions, each with its own database, both accept writes. The wishlist is an OR-Set and view counts are a PN-Counter: changes made on either side travel as messages and merge the same way everywhere, so both regions end with the same wishlist and the same count, with nobody deciding who won.',
    dashboard: 'Multi-master regions: sync messages, conflicts resolved, per-region objects',
    async run(s) {
      const student = need(s.student, 'the student key');
      const course = courseOf(s);
      const path = `/api/regions/students/${student.subject}/wishlist`;
      const add = await s.client.call('POST', `${path}/${course}?region=eu`, { key: student });
      expectStatus(add, 200, `POST ${path}/{course}?region=eu`);
      const inUs = await within(20_000, async () => {
        const r = await s.client.call('GET', `${path}?region=us`, { key: student });
        expectStatus(r, 200, `GET ${path}?region=us`);
        const courses = field<string[]>(r, 'courses');
        return courses.includes(course) ? courses : undefined;
      });
      check(
        inUs !== undefined,
        'the course added in eu to reach the wishlist in us',
        () => 'not there after 20 s',
      );
      const views = `/api/regions/courses/${course}/views`;
      const before = field<number>(
        await s.client.call('GET', `${views}?region=us`, { key: s.admin }),
        'views',
      );
      for (const region of ['eu', 'us']) {
        const v = await s.client.call('POST', `${views}?region=${region}`, { key: s.admin });
        expectStatus(v, 200, `POST ${views}?region=${region}`);
      }
      const agreed = await within(20_000, async () => {
        const counts = await Promise.all(
          ['eu', 'us'].map(async (region) =>
            field<number>(
              await s.client.call('GET', `${views}?region=${region}`, { key: s.admin }),
              'views',
            ),
          ),
        );
        return counts[0] === counts[1] && counts[0]! >= before + 2 ? counts[0] : undefined;
      });
      check(
        agreed !== undefined,
        'both regions to count both views',
        () => 'the counts still differ after 20 s',
      );
      return [
        `course ${course} added to the wishlist in eu; us shows it too`,
        `one view counted in each region: both now say ${agreed}`,
      ];
    },
  },
  {
    id: 'quorum',
    title: 'Stop a quorum node under load, and check the history',
    pattern: 'quorum reads and writes · linearizability checker',
    what: 'Values are kept on five nodes; writes and reads each need three. The platform stops one node while eight clients read and write, brings it back (hinted handoff, anti-entropy), and gives the recorded history to the linearizability checker; then it shows plain last-write-wins with a lagging clock losing a write.',
    dashboard: 'Quorum replication: read repairs, hints stored and delivered, the last verdict',
    async run(s) {
      const r = await s.client.call('POST', '/api/demos/quorum-node-down', { key: s.admin });
      expectStatus(r, 200, 'POST /api/demos/quorum-node-down');
      check(
        field<boolean>(r, 'ok') === true,
        'the checker to find the quorum history linearizable and the last-write-wins one not',
        () => field<string>(r, 'summary'),
      );
      const figures = field<{ label: string; value: number | string; unit?: string }[]>(
        r,
        'figures',
      );
      return [
        field<string>(r, 'summary'),
        figures
          .slice(0, 4)
          .map((f) => `${f.label} ${f.value}${f.unit ? ` ${f.unit}` : ''}`)
          .join(', '),
      ];
    },
  },
];
