import { z } from 'zod';
import type { Migration } from '../../engines/sql/migrations.js';
import { EventTypes } from '../../messaging/index.js';
import { demoPingType } from '../demos/relay-restart.js';

/**
 * Course enrollment as a choreography: the enrollment service writes EnrollmentRequested
 * through the outbox; the email, recommendations and instructor-stats services react (each
 * with its inbox) and emit their own events.
 */
export const enrollmentTypes = new EventTypes();
const types = enrollmentTypes;
// An enrollment is the pair (student, course); `enrollmentId` is only in events written before
// enrollments had composite keys (still accepted when they are relayed or replayed).
types.define(
  'enrollment.requested',
  z.object({ enrollmentId: z.string().optional(), student: z.string(), course: z.string() }),
);
types.define(
  'email.sent',
  z.object({
    enrollmentId: z.string().optional(),
    student: z.string().optional(),
    course: z.string().optional(),
    to: z.string(),
  }),
);
types.define('recommendations.updated', z.object({ student: z.string(), basedOn: z.string() }));
types.define(
  'instructor.stats.updated',
  z.object({ course: z.string(), enrollments: z.number().int() }),
);
// A course purchase's receipt (the purchases feature's saga sends it through this outbox).
types.define(
  'purchase.receipt',
  z.object({
    purchaseId: z.string(),
    student: z.string(),
    course: z.string(),
    amountCents: z.number().int(),
  }),
);
// The relay demonstration's own messages (see demos/relay-restart.ts).
types.define(demoPingType, z.object({ run: z.string(), n: z.number().int() }));

export const enrollmentMigrations: Migration[] = [
  {
    module: 'enrollment-app',
    version: 1,
    name: 'enrollments and the reacting services tables',
    sql: `
CREATE TABLE app_enrollments (id text PRIMARY KEY, student text NOT NULL, course text NOT NULL, requested_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE app_enrollment_emails (enrollment_id text PRIMARY KEY, recipient text NOT NULL);
CREATE TABLE app_recommendations (student text NOT NULL, course text NOT NULL, PRIMARY KEY (student, course));
CREATE TABLE app_course_enrollments (course text PRIMARY KEY, enrollments integer NOT NULL);
`,
  },
  {
    module: 'enrollment-app',
    version: 2,
    name: 'enrollments and their emails keyed by (student, course), not a joined id',
    // Old ids were student || ':' || course, unique, so the pairs are unique too. An email row
    // finds its pair through the enrollment; one without an enrollment is split at the first ':'.
    sql: `
ALTER TABLE app_enrollment_emails ADD COLUMN student text, ADD COLUMN course text;
UPDATE app_enrollment_emails m SET student = e.student, course = e.course
  FROM app_enrollments e WHERE e.id = m.enrollment_id;
UPDATE app_enrollment_emails SET student = split_part(enrollment_id, ':', 1),
  course = substr(enrollment_id, length(split_part(enrollment_id, ':', 1)) + 2)
  WHERE student IS NULL;
ALTER TABLE app_enrollment_emails DROP CONSTRAINT app_enrollment_emails_pkey;
ALTER TABLE app_enrollment_emails DROP COLUMN enrollment_id;
ALTER TABLE app_enrollment_emails ALTER COLUMN student SET NOT NULL, ALTER COLUMN course SET NOT NULL;
ALTER TABLE app_enrollment_emails ADD PRIMARY KEY (student, course);
ALTER TABLE app_enrollments DROP CONSTRAINT app_enrollments_pkey;
ALTER TABLE app_enrollments DROP COLUMN id;
ALTER TABLE app_enrollments ADD PRIMARY KEY (student, course);
`,
  },
  {
    module: 'enrollment-app',
    version: 3,
    name: 'announcements: which sharded enrollments have their EnrollmentRequested in the outbox',
    // Enrollments live on the shards since this version; this table is the outbox side's
    // record that an enrollment was announced, written in the outbox's transaction, so an
    // announcement is written once whichever of the request, the saga or the sweeper gets there.
    sql: `
CREATE TABLE app_enrollment_announcements (
  student text NOT NULL,
  course text NOT NULL,
  event_id text NOT NULL,
  correlation_id text NOT NULL,
  announced_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (student, course));
`,
  },
];

/**
 * The marketplace's tables on every shard of the `marketplace` map (hash slots over the
 * student id for enrollments and students, over the course id for the course directory).
 * `announced` is false until EnrollmentRequested is in the outbox (the catalog database's
 * transaction); `purchase_id` names the purchase that granted the enrollment, so the saga's
 * grant step recognises its own row when it runs again.
 */
export const marketplaceShardMigrations: Migration[] = [
  {
    module: 'marketplace-shard',
    version: 1,
    name: 'sharded enrollments, students and the course directory',
    sql: `
CREATE TABLE app_enrollments (
  student text NOT NULL,
  course text NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  purchase_id text,
  announced boolean NOT NULL DEFAULT false,
  PRIMARY KEY (student, course));
CREATE INDEX app_enrollments_unannounced ON app_enrollments (requested_at) WHERE NOT announced;
CREATE TABLE app_students (id text PRIMARY KEY, email text, name text NOT NULL);
CREATE TABLE app_course_directory (
  id text PRIMARY KEY,
  instructor text NOT NULL,
  title text NOT NULL,
  topic text NOT NULL,
  version integer NOT NULL);
`,
  },
];
