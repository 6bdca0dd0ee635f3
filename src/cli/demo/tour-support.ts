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

export const need = <T>(v: T | undefined, what: string): T => {
  check(v !== undefined, `${what} from an earlier step`, () => 'nothing (that step did not run)');
  return v;
};

export function field<T>(a: Answer, name: string): T {
  return (a.body as Record<string, T> | undefined)?.[name] as T;
}

export function expectStatus(a: Answer, status: number, what: string): void {
  check(a.status === status, `${status} from ${what}`, () => describe(a));
}

interface CacheStats {
  hits: number;
  misses: number;
}

export async function cacheStats(s: TourState): Promise<CacheStats> {
  const a = await s.client.call('GET', '/api/cache/stats');
  expectStatus(a, 200, 'GET /api/cache/stats');
  return a.body as CacheStats;
}

export async function issueKey(s: TourState, role: string, subject: string): Promise<Key> {
  const a = await s.client.call('POST', '/api/auth/keys', {
    key: s.admin,
    json: { role, subject, label: 'guided tour (cdp demo)' },
  });
  expectStatus(a, 201, `POST /api/auth/keys (issue a ${role} key with the admin key)`);
  return { role, subject, token: field<string>(a, 'token') };
}

export async function readCourse(s: TourState, id: string): Promise<{ priceCents: number }> {
  const a = await s.client.call('GET', `/api/catalog/courses/${id}`);
  expectStatus(a, 200, `GET /api/catalog/courses/${id}`);
  return a.body as { priceCents: number };
}

/** Poll the flow trace until every reaction is there (the relay runs in the background). */
export async function traceUntil(
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
export async function relayPublished(s: TourState): Promise<number> {
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

export const REACTIONS = ['email.sent', 'recommendations.updated', 'instructor.stats.updated'];
export const CONSUMERS = ['email', 'instructor-stats', 'recommendations'];
