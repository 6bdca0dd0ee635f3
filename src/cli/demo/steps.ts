import { check, describe } from './client.js';
import { coreSteps } from './steps-core.js';
import { distributionSteps } from './steps-distribution.js';
import { workflowSteps } from './steps-workflow.js';
import { expectStatus, field, need, type Step } from './tour-support.js';

export { newRunId, type Step, type TourState } from './tour-support.js';

const security: Step = {
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
};

/** The tour, in order: each step's pattern, then requests that must be refused. */
export const steps: Step[] = [...coreSteps, ...workflowSteps, ...distributionSteps, security];
