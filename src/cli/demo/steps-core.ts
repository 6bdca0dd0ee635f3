import { randomBytes } from 'node:crypto';
import { check, describe } from './client.js';
import {
  CONSUMERS,
  cacheStats,
  expectStatus,
  field,
  issueKey,
  need,
  REACTIONS,
  readCourse,
  relayPublished,
  type Step,
  type TourState,
  traceUntil,
} from './tour-support.js';

/** The tour's first steps: caching, event sourcing, messaging, CQRS, media and static hosting. */
export const coreSteps: Step[] = [
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
];
