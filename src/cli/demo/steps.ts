import { randomBytes } from 'node:crypto';
import { type Answer, check, describe, type Key, type TourClient } from './client.js';

/** What the steps share: the client, the keys they issue, the course they make. */
export interface TourState {
  client: TourClient;
  admin: Key;
  /** A suffix that keeps this run's instructor, students and course apart from earlier runs'. */
  run: string;
  instructor?: Key;
  student?: Key;
  otherStudent?: Key;
  course?: { id: string; title: string; priceCents: number };
  enrollment?: { correlationId: string };
}

export interface Step {
  id: string;
  title: string;
  pattern: string;
  /** One or two sentences: what the step does and why it shows the pattern. */
  what: string;
  /** The dashboard figure to look at while (or after) it runs. */
  dashboard: string;
  /** Runs the step; returns what changed, one line each. Throws StepFailure when a check fails. */
  run(s: TourState): Promise<string[]>;
}

export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

const need = <T>(v: T | undefined, what: string): T => {
  check(v !== undefined, `${what} from an earlier step`, () => 'nothing (that step did not run)');
  return v;
};

function field<T>(a: Answer, name: string): T {
  return (a.body as Record<string, T> | undefined)?.[name] as T;
}

function expectStatus(a: Answer, status: number, what: string): void {
  check(a.status === status, `${status} from ${what}`, () => describe(a));
}

interface CacheStats {
  hits: number;
  misses: number;
}

async function cacheStats(s: TourState): Promise<CacheStats> {
  const a = await s.client.call('GET', '/api/cache/stats');
  expectStatus(a, 200, 'GET /api/cache/stats');
  return a.body as CacheStats;
}

async function issueKey(s: TourState, role: string, subject: string): Promise<Key> {
  const a = await s.client.call('POST', '/api/auth/keys', {
    key: s.admin,
    json: { role, subject, label: 'guided tour (cdp demo)' },
  });
  expectStatus(a, 201, `POST /api/auth/keys (issue a ${role} key with the admin key)`);
  return { role, subject, token: field<string>(a, 'token') };
}

async function readCourse(s: TourState, id: string): Promise<{ priceCents: number }> {
  const a = await s.client.call('GET', `/api/catalog/courses/${id}`);
  expectStatus(a, 200, `GET /api/catalog/courses/${id}`);
  return a.body as { priceCents: number };
}

/** Poll the flow trace until every reaction is there (the relay runs in the background). */
async function traceUntil(
  s: TourState,
  correlationId: string,
  wanted: string[],
  timeoutMs = 30_000,
): Promise<{ type: string; handledBy: string[] }[]> {
  const deadline = Date.now() + timeoutMs;
  let steps: { type: string; handledBy: string[] }[] = [];
  for (;;) {
    const a = await s.client.call('GET', `/api/enrollment/flows/${correlationId}`, {
      key: s.admin,
    });
    if (a.status === 200) steps = field(a, 'steps');
    const types = new Set(steps.map((t) => t.type));
    if (wanted.every((w) => types.has(w)) || Date.now() > deadline) return steps;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The enrollment panel's "published by relay" figure, as the dashboard shows it. */
async function relayPublished(s: TourState): Promise<number> {
  const a = await s.client.call('GET', '/api/panels');
  expectStatus(a, 200, 'GET /api/panels');
  const panels = field<{ id: string; stats: { label: string; value: unknown }[] }[]>(a, 'panels');
  const stat = panels
    ?.find((p) => p.id === 'enrollment')
    ?.stats.find((x) => x.label === 'published by relay');
  check(typeof stat?.value === 'number', 'the enrollment panel to show "published by relay"', () =>
    JSON.stringify(stat ?? null),
  );
  return stat.value as number;
}

const REACTIONS = ['email.sent', 'recommendations.updated', 'instructor.stats.updated'];
const CONSUMERS = ['email', 'instructor-stats', 'recommendations'];

export const steps: Step[] = [
  {
    id: 'keys',
    title: 'Keys and a course of our own',
    pattern: 'API keys with roles',
    what: 'With the admin key, issue keys for an instructor and two students of this run; the instructor creates a course under their own name (the catalog is the system of record).',
    dashboard: 'Catalog: courses (one more)',
    async run(s) {
      const me = await s.client.call('GET', '/api/auth/me', { key: s.admin });
      check(
        me.status === 200 && field(me, 'role') === 'admin',
        'the admin key to be accepted (GET /api/auth/me: 200, role admin)',
        () => (me.status === 200 ? `role ${field(me, 'role')}` : describe(me)),
      );
      s.admin.subject = String(field(me, 'subject'));
      s.instructor = await issueKey(s, 'instructor', `Tour Instructor ${s.run}`);
      s.student = await issueKey(s, 'student', `tour-student-${s.run}`);
      s.otherStudent = await issueKey(s, 'student', `tour-other-${s.run}`);
      const c = await s.client.call('POST', '/api/catalog/courses', {
        key: s.instructor,
        json: {
          title: `Patterns on a tour (${s.run})`,
          topic: 'architecture',
          priceCents: 2500,
          description: 'made by cdp demo',
        },
      });
      expectStatus(c, 201, 'POST /api/catalog/courses as the instructor');
      s.course = c.body as TourState['course'];
      const course = need(s.course, 'a course');
      return [
        `keys issued: instructor "${s.instructor.subject}", students "${s.student.subject}" and "${s.otherStudent.subject}"`,
        `course ${course.id} "${course.title}" at ${course.priceCents} cents`,
      ];
    },
  },
  {
    id: 'cache-aside',
    title: 'Read a course twice, then change it',
    pattern: 'cache-aside',
    what: 'The first read misses the cache and loads the row from SQL; the second is served from the cache; an update invalidates the entry, so the next read misses and shows the new price.',
    dashboard: 'Course cache: hits, misses, hit ratio',
    async run(s) {
      const course = need(s.course, 'a course');
      const before = await cacheStats(s);
      await readCourse(s, course.id);
      const afterFirst = await cacheStats(s);
      check(
        afterFirst.misses > before.misses,
        'the first read to miss (cache misses to go up)',
        () => `misses ${before.misses} -> ${afterFirst.misses}`,
      );
      await readCourse(s, course.id);
      const afterSecond = await cacheStats(s);
      check(
        afterSecond.hits > afterFirst.hits,
        'the second read to hit (cache hits to go up)',
        () => `hits ${afterFirst.hits} -> ${afterSecond.hits}`,
      );
      const newPrice = course.priceCents + 500;
      const p = await s.client.call('PATCH', `/api/catalog/courses/${course.id}`, {
        key: need(s.instructor, 'the instructor key'),
        json: { priceCents: newPrice },
      });
      expectStatus(p, 200, 'PATCH /api/catalog/courses/:id as its instructor');
      const read = await readCourse(s, course.id);
      const afterUpdate = await cacheStats(s);
      check(
        read.priceCents === newPrice,
        `the read after the update to show the new price ${newPrice}`,
        () => `${read.priceCents} (a stale cached row)`,
      );
      check(
        afterUpdate.misses > afterSecond.misses,
        'the read after the update to miss (the update invalidated the entry)',
        () => `misses ${afterSecond.misses} -> ${afterUpdate.misses}`,
      );
      course.priceCents = newPrice;
      return [
        `misses ${before.misses} -> ${afterFirst.misses} (first read), hits ${afterFirst.hits} -> ${afterSecond.hits} (second read)`,
        `price ${newPrice - 500} -> ${newPrice} cents; the next read missed (misses ${afterSecond.misses} -> ${afterUpdate.misses}) and showed the new price`,
      ];
    },
  },
  {
    id: 'event-sourcing',
    title: 'Top up a wallet, buy the course',
    pattern: 'event sourcing',
    what: "The wallet has no balance column: its balance is the sum of its events. Top up, then buy the course at the catalog's price (the platform takes the price from the catalog, not from the request).",
    dashboard: 'Reviews (event sourcing + CQRS): last position',
    async run(s) {
      const student = need(s.student, 'the student key');
      const course = need(s.course, 'a course');
      const wallet = `/api/reviews/wallets/${encodeURIComponent(student.subject)}`;
      const top = await s.client.call('POST', `${wallet}/top-ups`, {
        key: student,
        json: { amountCents: 10_000 },
      });
      expectStatus(top, 201, 'POST .../top-ups as the student');
      check(
        field(top, 'balanceCents') === 10_000,
        'a balance of 10000 cents after the top-up',
        () => String(field(top, 'balanceCents')),
      );
      const buy = await s.client.call('POST', `${wallet}/purchases`, {
        key: student,
        json: { courseId: course.id },
      });
      expectStatus(buy, 201, 'POST .../purchases as the student');
      const left = 10_000 - course.priceCents;
      check(
        field(buy, 'balanceCents') === left,
        `a balance of ${left} cents (10000 less the catalog price ${course.priceCents})`,
        () => String(field(buy, 'balanceCents')),
      );
      const w = await s.client.call('GET', wallet, { key: student });
      expectStatus(w, 200, 'GET the wallet as the student');
      const history = field<{ type: string; position: number }[]>(w, 'history') ?? [];
      check(
        history.length === 2,
        'two events in the wallet stream (the top-up and the purchase)',
        () => `${history.length}: ${history.map((e) => e.type).join(', ')}`,
      );
      return [
        `balance 0 -> 10000 -> ${left} cents`,
        `wallet stream: ${[...history]
          .reverse()
          .map((e) => `${e.type} @${e.position}`)
          .join(', ')}`,
      ];
    },
  },
  {
    id: 'outbox',
    title: 'Enroll: the request flows through the outbox',
    pattern: 'transactional outbox + choreography',
    what: 'The enrollment row and its EnrollmentRequested event commit in one transaction; the relay publishes the event, and the email, recommendations and instructor-stats services each react and emit their own event.',
    dashboard: 'Enrollment choreography: outbox backlog, published by relay, the flow table',
    async run(s) {
      const student = need(s.student, 'the student key');
      const course = need(s.course, 'a course');
      const relayedBefore = await relayPublished(s);
      const e = await s.client.call('POST', '/api/enrollment/enrollments', {
        key: student,
        json: { course: course.id },
      });
      expectStatus(e, 202, 'POST /api/enrollment/enrollments as the student');
      const correlationId = field<string>(e, 'correlationId');
      s.enrollment = { correlationId };
      const trace = await traceUntil(s, correlationId, ['enrollment.requested', ...REACTIONS]);
      const types = trace.map((t) => t.type);
      check(
        REACTIONS.every((r) => types.includes(r)),
        `the relay to deliver the event and the flow to show ${REACTIONS.join(', ')} within 30 s`,
        () => (types.length ? types.join(', ') : 'no step in the flow'),
      );
      const relayedAfter = await relayPublished(s);
      check(
        relayedAfter > relayedBefore,
        'the relay to have published more messages (dashboard: published by relay)',
        () => `${relayedBefore} -> ${relayedAfter}`,
      );
      const requested = trace.find((t) => t.type === 'enrollment.requested');
      return [
        `published by relay ${relayedBefore} -> ${relayedAfter} (the event and the reactions' own events)`,
        `flow ${correlationId}: ${types.join(' -> ')}`,
        `enrollment.requested handled by ${requested?.handledBy.join(', ') || 'nobody'}`,
      ];
    },
  },
  {
    id: 'cqrs',
    title: 'Review the course, read its rating',
    pattern: 'CQRS (read model at a consistency token)',
    what: 'The review is a command on an event-sourced stream; its answer carries a position. Reading the rating with ?after=<position> waits until the read model has caught up to that write.',
    dashboard: 'Reviews: the course-ratings projection and its lag',
    async run(s) {
      const student = need(s.student, 'the student key');
      const course = need(s.course, 'a course');
      const r = await s.client.call('POST', `/api/reviews/courses/${course.id}/reviews`, {
        key: student,
        json: { rating: 5 },
      });
      expectStatus(r, 201, 'POST .../reviews as the enrolled student');
      const position = field<number>(r, 'position');
      const read = await s.client.call(
        'GET',
        `/api/reviews/courses/${course.id}/rating?after=${position}`,
      );
      expectStatus(read, 200, 'GET .../rating?after=<position>');
      const count = field<number>(read, 'reviewCount');
      const avg = field<number>(read, 'averageRating');
      check(
        count === 1 && Number(avg) === 5,
        'the read model to show 1 review averaging 5 at that position',
        () => `${count} review(s), average ${avg}`,
      );
      return [`review written at position ${position}; rating read there: ${count} review, ${avg}`];
    },
  },
  {
    id: 'idempotent-consumer',
    title: 'The same enrollment twice',
    pattern: 'idempotent consumer',
    what: "Each consumer records a message's id in its inbox in the same transaction as its effect, so a message delivered twice (brokers deliver at least once) has one effect. Send the same enrollment again: it is refused (409 ALREADY_ENROLLED), and the inbox shows each consumer handled the EnrollmentRequested once: one email, one recommendation, one stats update.",
    dashboard: 'Enrollment choreography: the flow table (each service once)',
    async run(s) {
      const student = need(s.student, 'the student key');
      const course = need(s.course, 'a course');
      const { correlationId } = need(s.enrollment, 'an enrollment');
      const again = await s.client.call('POST', '/api/enrollment/enrollments', {
        key: student,
        json: { course: course.id },
      });
      check(
        again.status === 409 &&
          (again.body as { error?: { code?: string } }).error?.code === 'ALREADY_ENROLLED',
        '409 ALREADY_ENROLLED for the same enrollment again',
        () => describe(again),
      );
      const trace = await traceUntil(s, correlationId, [], 0);
      const requested = trace.filter((t) => t.type === 'enrollment.requested');
      check(requested.length === 1, 'one enrollment.requested in the flow', () =>
        String(requested.length),
      );
      const handled = [...(requested[0]?.handledBy ?? [])].sort();
      check(
        handled.join(',') === CONSUMERS.join(','),
        `each consumer once in the inbox (${CONSUMERS.join(', ')})`,
        () => handled.join(', ') || 'none',
      );
      for (const r of REACTIONS) {
        const n = trace.filter((t) => t.type === r).length;
        check(n === 1, `one ${r} (one effect)`, () => `${n}`);
      }
      return [
        'second request refused: 409 ALREADY_ENROLLED',
        `inbox: enrollment.requested handled once by each of ${handled.join(', ')}; one of each reaction`,
      ];
    },
  },
  {
    id: 'valet-key',
    title: 'Upload and play a video with valet keys',
    pattern: 'valet key',
    what: "The instructor mints an upload policy and posts the file straight to the storage server; the enrolled student gets a presigned play URL; the student revokes it and the storage server refuses the next use. The platform's API never carries the bytes.",
    dashboard: 'Media (Valet Key): keys issued, bytes moved directly vs through the app',
    async run(s) {
      const instructor = need(s.instructor, 'the instructor key');
      const student = need(s.student, 'the student key');
      const course = need(s.course, 'a course');
      const up = await s.client.call('POST', '/api/media/uploads', {
        key: instructor,
        json: { courseId: course.id, contentType: 'video/mp4', maxBytes: 1024 * 1024 },
      });
      expectStatus(up, 200, "POST /api/media/uploads as the course's instructor");
      const policy = up.body as { keyId: string; url: string; fields: Record<string, string> };
      // The policy names the course's folder; the uploader picks the file name under it, and
      // sends the Content-Type the policy requires as a form field (as a browser form does).
      const prefix = policy.fields.key ?? `courses/${course.id}/`;
      const objectKey = `${prefix}intro.mp4`;
      const video = randomBytes(64 * 1024);
      const form = new FormData();
      for (const [k, v] of Object.entries(policy.fields))
        form.append(k, k === 'key' ? objectKey : v);
      if (!('Content-Type' in policy.fields)) form.append('Content-Type', 'video/mp4');
      form.append('file', new Blob([video], { type: 'video/mp4' }), 'intro.mp4');
      const stored = await s.client.direct(
        policy.url,
        { method: 'POST', body: form },
        'valet key (upload policy)',
      );
      check(
        stored.status >= 200 && stored.status < 300,
        'the storage server to accept the upload (2xx)',
        () =>
          `${stored.status} ${typeof stored.body === 'string' ? stored.body.slice(0, 200) : ''}`,
      );
      const play = await s.client.call(
        'GET',
        `/api/media/play?key=${encodeURIComponent(objectKey)}`,
        { key: student },
      );
      expectStatus(play, 200, 'GET /api/media/play as the enrolled student');
      const { keyId, url } = play.body as { keyId: string; url: string };
      const got = await s.client.direct(url, {}, 'valet key (play URL)');
      check(got.status === 200, 'the play URL to answer 200', () => describe(got));
      check(
        Buffer.isBuffer(got.body) && got.body.equals(video),
        `the ${video.length} uploaded bytes back`,
        () => (Buffer.isBuffer(got.body) ? `${got.body.length} other bytes` : 'a text body'),
      );
      const rv = await s.client.call('POST', `/api/media/keys/${keyId}/revoke`, { key: student });
      expectStatus(rv, 200, 'POST /api/media/keys/:keyId/revoke as the student who got it');
      const after = await s.client.direct(url, {}, 'valet key (revoked)');
      check(after.status === 403, 'the storage server to refuse the revoked URL (403)', () =>
        String(after.status),
      );
      return [
        `uploaded ${video.length} bytes to ${objectKey} straight to the storage server`,
        `play URL (valet key ${keyId}) answered 200; after the revoke it answered 403`,
      ];
    },
  },
  {
    id: 'static',
    title: 'The dashboard, as static content',
    pattern: 'static content hosting',
    what: 'The dashboard is served by the static hosting module: a strong ETag, and a 304 with no body when the browser already has it.',
    dashboard: 'the dashboard itself (reload it)',
    async run(s) {
      const first = await s.client.call('GET', '/dashboard/');
      expectStatus(first, 200, 'GET /dashboard/');
      const etag = first.headers.get('etag');
      check(etag !== null, 'an ETag header', () => 'none');
      const again = await s.client.call('GET', '/dashboard/', {
        headers: { 'if-none-match': etag },
      });
      expectStatus(again, 304, 'GET /dashboard/ with If-None-Match');
      return [`ETag ${etag}; the second request answered 304 with no body`];
    },
  },
  {
    id: 'saga',
    title: 'Buy a course as a saga, and watch a declined one compensate',
    pattern: 'orchestrated saga',
    what: 'A purchase reserves a seat (pending: a semantic lock readers see), charges the wallet, grants access and sends a receipt, each a durable step. A student with an empty wallet is declined at the charge: the seat reservation is compensated (released) and nothing else happened.',
    dashboard:
      "Purchases (orchestrated saga): runs by outcome, the latest saga's steps and compensations",
    async run(s) {
      const student = need(s.student, 'the student key');
      const other = need(s.otherStudent, 'the other student key');
      const c = await s.client.call('POST', '/api/catalog/courses', {
        key: need(s.instructor, 'the instructor key'),
        json: { title: `Sagas on a tour (${s.run})`, topic: 'architecture', priceCents: 1500 },
      });
      expectStatus(c, 201, 'POST /api/catalog/courses as the instructor');
      const course = field<string>(c, 'id');
      const buy = async (who: Key) => {
        const a = await s.client.call('POST', '/api/purchases', { key: who, json: { course } });
        expectStatus(a, 202, `POST /api/purchases as ${who.subject}`);
        const id = field<string>(a, 'purchaseId');
        const deadline = Date.now() + 30_000;
        for (;;) {
          const r = await s.client.call('GET', `/api/purchases/${id}`, { key: who });
          expectStatus(r, 200, 'GET /api/purchases/:id');
          const status = field<string>(r, 'status');
          if (status !== 'running' || Date.now() > deadline) return r;
          await new Promise((done) => setTimeout(done, 100));
        }
      };
      const ok = await buy(student);
      check(
        field(ok, 'status') === 'completed' && field(ok, 'seat') === 'confirmed',
        'the purchase to complete with its seat confirmed',
        () => `${field(ok, 'status')}, seat ${field(ok, 'seat')}`,
      );
      const declined = await buy(other);
      const compensated = field<{ step: string; phase: string; status: string }[]>(
        declined,
        'steps',
      )
        .filter((x) => x.phase === 'compensate')
        .map((x) => x.step);
      check(
        field(declined, 'status') === 'compensated' &&
          field(declined, 'failedStep') === 'charge' &&
          field(declined, 'seat') === 'released',
        'the empty wallet to be declined at the charge, and the seat released by compensation',
        () =>
          `${field(declined, 'status')} at ${field(declined, 'failedStep')}, seat ${field(declined, 'seat')}`,
      );
      return [
        `${student.subject} bought course ${course}: completed, seat confirmed`,
        `${other.subject} (empty wallet): declined at "charge" (${field(declined, 'reason')}); compensated: ${compensated.join(', ')}; seat released`,
      ];
    },
  },
  {
    id: 'two-phase-commit',
    title: 'Pay the instructor out across two databases',
    pattern: 'two-phase commit',
    what: "The instructor's earnings are the purchases of their courses. A payout writes a record in the platform's database and an entry in the payout ledger (MariaDB, or a second database) in one two-phase commit: both commit or neither. Asking for more than is available is refused everywhere.",
    dashboard: 'Instructor payouts: paid (platform) equals paid (ledger); in-doubt transactions 0',
    async run(s) {
      const instructor = need(s.instructor, 'the instructor key');
      const path = `/api/payouts/instructors/${encodeURIComponent(instructor.subject)}`;
      const deadline = Date.now() + 30_000;
      let balance = await s.client.call('GET', path, { key: instructor });
      while (field<number>(balance, 'availableCents') <= 0 && Date.now() < deadline) {
        await new Promise((done) => setTimeout(done, 200));
        balance = await s.client.call('GET', path, { key: instructor });
      }
      expectStatus(balance, 200, `GET ${path} as the instructor`);
      const available = field<number>(balance, 'availableCents');
      check(
        available > 0,
        'earnings from the purchases of the earlier steps',
        () => `${available} cents`,
      );
      const paid = await s.client.call('POST', `${path}/payouts`, {
        key: instructor,
        json: { amountCents: available },
      });
      expectStatus(paid, 201, 'POST .../payouts for everything available');
      const again = await s.client.call('POST', `${path}/payouts`, {
        key: instructor,
        json: { amountCents: 1 },
      });
      expectStatus(again, 409, 'a second payout with nothing left');
      const panels = await s.client.call('GET', '/api/panels');
      const stats = Object.fromEntries(
        (
          field<{ id: string; stats: { label: string; value: unknown }[] }[]>(
            panels,
            'panels',
          ).find((p) => p.id === 'payouts')?.stats ?? []
        ).map((x) => [x.label, x.value]),
      );
      check(
        stats['paid (platform)'] === stats['paid (ledger)'] && stats['in-doubt transactions'] === 0,
        'both sides to hold the same total and nothing to stay prepared',
        () => JSON.stringify(stats),
      );
      return [
        `paid out ${available} cents (${field(paid, 'mode')}); both sides now hold ${stats['paid (ledger)']} cents; in doubt: 0`,
        `a second payout: ${describe(again)}`,
      ];
    },
  },
  {
    id: 'idempotency-key',
    title: 'Send the same top-up twice with one Idempotency-Key',
    pattern: 'idempotency keys',
    what: 'A client that retries a POST after a lost answer must not pay twice. The same Idempotency-Key replays the first response (marked Idempotent-Replayed) and the wallet grows once; the key reused with another amount is refused (422).',
    dashboard: 'none (outcomes are counted in cdp_idempotency_requests_total at /metrics)',
    async run(s) {
      const student = need(s.student, 'the student key');
      const wallet = `/api/reviews/wallets/${encodeURIComponent(student.subject)}`;
      const key = `tour-top-up-${s.run}`;
      const before = await s.client.call('GET', wallet, { key: student });
      expectStatus(before, 200, 'GET the wallet as its student');
      const send = (amountCents: number) =>
        s.client.call('POST', `${wallet}/top-ups`, {
          key: student,
          json: { amountCents },
          headers: { 'idempotency-key': key },
        });
      const first = await send(250);
      expectStatus(first, 201, 'the first top-up with an Idempotency-Key');
      const again = await send(250);
      expectStatus(again, 201, 'the same top-up sent again with the same key');
      check(
        again.headers.get('idempotent-replayed') === 'true' &&
          JSON.stringify(again.body) === JSON.stringify(first.body),
        'the second answer to be the first one replayed (Idempotent-Replayed: true, same body)',
        () => `idempotent-replayed: ${again.headers.get('idempotent-replayed')}`,
      );
      const other = await send(999);
      expectStatus(other, 422, 'the same key with another amount');
      const after = await s.client.call('GET', wallet, { key: student });
      const grew = field<number>(after, 'balanceCents') - field<number>(before, 'balanceCents');
      check(grew === 250, 'the balance to grow by 250 cents once', () => `it grew by ${grew}`);
      return [
        `two POSTs with key ${key}: one top-up of 250 cents; the second answer was a replay`,
        `the key with 999 cents instead: ${describe(other)}`,
      ];
    },
  },
  {
    id: 'security',
    title: 'Requests that must be refused',
    pattern: 'security rules',
    what: "A mutating request without a key is refused (401); a student's key used on another student's wallet is forbidden (403), and that wallet is unchanged.",
    dashboard: 'none (the refusals are in the HTTP metrics at /metrics)',
    async run(s) {
      const student = need(s.student, 'the student key');
      const other = need(s.otherStudent, 'the other student key');
      const anon = await s.client.call('POST', '/api/catalog/courses', {
        json: { title: 'no key', topic: 'x', priceCents: 1 },
      });
      expectStatus(anon, 401, 'POST /api/catalog/courses without a key');
      const wallet = `/api/reviews/wallets/${encodeURIComponent(student.subject)}`;
      const before = await s.client.call('GET', wallet, { key: student });
      expectStatus(before, 200, 'GET the wallet as its student');
      const steal = await s.client.call('POST', `${wallet}/top-ups`, {
        key: other,
        json: { amountCents: 1 },
      });
      expectStatus(steal, 403, "a top-up of another student's wallet");
      const after = await s.client.call('GET', wallet, { key: student });
      check(
        field(after, 'balanceCents') === field(before, 'balanceCents'),
        'the wallet unchanged',
        () => `${field(before, 'balanceCents')} -> ${field(after, 'balanceCents')}`,
      );
      return [
        `no key: ${describe(anon)}`,
        `another student's key: ${describe(steal)}; balance still ${field(after, 'balanceCents')} cents`,
      ];
    },
  },
];
