/** A page of the dashboard about one feature and the patterns it shows. */
export interface PatternPage {
  /** Route (#/<slug>) and the id of the feature's panel. */
  slug: string;
  panel: string;
  title: string;
  patterns: string;
  /** In plain words: what the pattern does here and why it matters. */
  explanation: string;
  docs: { title: string; page: string }[];
}

export const patternPages: PatternPage[] = [
  {
    slug: 'cache',
    panel: 'cache',
    title: 'Caching',
    patterns: 'cache-aside · tiered cache · stampede protection',
    explanation:
      'Course pages are read far more often than they change, so the platform keeps recently read courses in memory (and in Redis when it is configured) and asks the database only on a miss. When many readers miss the same course at the same moment, only one of them loads it and the others wait for that result, so a popular page going cold never floods the database. Changing a course removes it from every cache, so nobody reads an old version.',
    docs: [{ title: 'Cache-aside', page: 'docs/patterns/cache-aside.md' }],
  },
  {
    slug: 'reviews',
    panel: 'reviews',
    title: 'Event sourcing & CQRS',
    patterns: 'event sourcing · CQRS projections · materialized views',
    explanation:
      'Reviews and wallets are not stored as rows that get overwritten: every change is appended to a log of events, and the current state is what those events add up to. Reads come from separate tables (projections) kept up to date from the log, shaped for the questions readers ask. Because the log is the truth, a projection can be thrown away and rebuilt from it at any time, even while people keep reading.',
    docs: [
      { title: 'Event sourcing', page: 'docs/patterns/event-sourcing.md' },
      { title: 'CQRS', page: 'docs/patterns/cqrs.md' },
      { title: 'Materialized view', page: 'docs/patterns/materialized-view.md' },
    ],
  },
  {
    slug: 'messaging',
    panel: 'enrollment',
    title: 'Messaging',
    patterns: 'transactional outbox · relay · idempotent consumer · choreography',
    explanation:
      'When a student enrolls, other services (email, recommendations, instructor statistics) must hear about it. The enrollment and its message are saved in the same database transaction, so there is never one without the other; a relay then publishes waiting messages to the broker. If the relay stops, messages simply wait. Each consumer remembers the ids it has handled, so a message delivered twice has its effect once.',
    docs: [
      { title: 'Transactional outbox', page: 'docs/patterns/transactional-outbox.md' },
      { title: 'Idempotent consumer', page: 'docs/patterns/idempotent-consumer.md' },
      { title: 'Choreography', page: 'docs/patterns/choreography.md' },
    ],
  },
  {
    slug: 'media',
    panel: 'media',
    title: 'Media & static hosting',
    patterns: 'valet key · static content hosting',
    explanation:
      'Videos are large, so the application does not carry them. Instead it hands the browser a valet key: a signed, short-lived permission to upload or download one object, straight to and from the storage server. The key can be revoked at any time, and every use is audited. This dashboard itself is served by the static content hosting module, with caching headers and no way to write.',
    docs: [
      { title: 'Valet key', page: 'docs/patterns/valet-key.md' },
      { title: 'Static content hosting', page: 'docs/patterns/static-content-hosting.md' },
    ],
  },
  {
    slug: 'sagas',
    panel: 'purchases',
    title: 'Sagas',
    patterns: 'orchestrated saga · semantic lock · durable execution',
    explanation:
      'Buying a course touches several things that cannot share one transaction: a seat, the wallet, access to the course, a receipt. The purchase runs as a saga of durable steps: each step is recorded before the next starts, so a crash resumes where it stopped, and each step says how to undo it. When the wallet declines the charge, the steps already done are undone in reverse order. While a purchase is under way its seat shows as pending, so nobody else takes it and readers can see why.',
    docs: [
      { title: 'Saga', page: 'docs/patterns/saga.md' },
      { title: 'Orchestration', page: 'docs/patterns/orchestration.md' },
      { title: 'Idempotency keys', page: 'docs/patterns/idempotency-keys.md' },
    ],
  },
  {
    slug: 'payouts',
    panel: 'payouts',
    title: 'Two-phase commit',
    patterns: 'two-phase commit · decision log · recovery',
    explanation:
      "Paying an instructor writes to two databases: the platform's own and a payout ledger. Both must change, or neither. Each database first prepares its part and promises to keep it, then a coordinator writes its decision down and tells both to commit. If anything fails before the decision, both parts are rolled back; if the coordinator crashes after it, recovery finishes the job from the log. Nothing should stay prepared for long: the in-doubt figure stays at zero.",
    docs: [{ title: 'Two-phase commit', page: 'docs/patterns/two-phase-commit.md' }],
  },
  {
    slug: 'quorum',
    panel: 'quorum',
    title: 'Quorum replication',
    patterns: 'quorum reads and writes · read repair · hinted handoff · Merkle anti-entropy',
    explanation:
      'Every value is kept on several nodes. A write returns once a majority has stored it and a read asks a majority, so a read always meets the latest write even while a node is down. Reads also copy the newest value back to nodes that lag, writes a stopped node missed are kept for it on another node and handed over when it returns, and nodes compare summaries of their data now and then to fix what slipped through. The demonstration stops a node under load and lets a linearizability checker confirm that no reader ever saw time go backwards, then shows how plain last-write-wins with clocks that disagree loses a write.',
    docs: [{ title: 'Quorum', page: 'docs/patterns/quorum.md' }],
  },
  {
    slug: 'sharding',
    panel: 'sharding',
    title: 'Sharding',
    patterns: 'hash slots · online slot moves · index tables · fan-out queries',
    explanation:
      "Enrollments and student profiles are spread over several databases (shards) by student id: each id hashes to one of a fixed number of slots, and each slot belongs to one shard, so a student's rows are always together and one shard answers for them. Adding a shard moves whole slots, never rehashes every row. A slot moves while people keep writing: its rows are copied, the changes made meanwhile are replayed, writes to that slot pause for a moment while ownership switches, and nothing is lost. Questions by something other than the student id (courses by instructor, a student by email) are answered from index tables kept on the shard of the looked-up value, so they ask one shard instead of all.",
    docs: [
      { title: 'Sharding', page: 'docs/patterns/sharding.md' },
      { title: 'Index table', page: 'docs/patterns/index-table.md' },
    ],
  },
  {
    slug: 'multi-master',
    panel: 'multi-master',
    title: 'Multi-master regions',
    patterns: 'multi-master replication · CRDTs · anti-entropy',
    explanation:
      'The platform runs in two regions, each with its own database, and both accept writes: a student in Europe and one in America never wait for an ocean. A wishlist is a set that merges itself (an OR-Set): when one region removes a course while the other adds it again, the add wins, on both sides, without anyone deciding. View counts are counters that add up the same way. Changes travel between the regions as messages; when some are lost (cut the link with the demonstration), the regions compare fingerprints of their data now and then and send each other what differs, until both hold the same thing.',
    docs: [{ title: 'Multi-master replication', page: 'docs/patterns/multi-master.md' }],
  },
  {
    slug: 'replication',
    panel: 'replication',
    title: 'Replication',
    patterns: 'primary and replicas · read-your-writes · bounded staleness · failover',
    explanation:
      'The catalog can read from copies of the database that follow the primary a moment behind (PostgreSQL streaming standbys). Reads spread over the copies; writes still go to the primary. When an instructor changes a course, the answer carries a token naming that change, and a read that sends the token back is served only by a copy that already has it, or by the primary: nobody sees their own edit vanish. The curve shows how likely a copy is to be behind, against the time since a write, with and without waiting for one copy on every commit.',
    docs: [{ title: 'Primary and replicas', page: 'docs/patterns/replication.md' }],
  },
];
