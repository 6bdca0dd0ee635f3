import { z } from 'zod';
import { type Decider, DomainError, defineCommand } from '../../cqrs/index.js';

/**
 * The marketplace's event-sourced model: reviews of a course (one stream per course) and a
 * student wallet (one stream per student) whose balance is the sum of its events. Their read
 * models are in `read-models.ts`, their tables in `migrations.ts`. The decider names
 * ('course-reviews', 'student-wallet') and the stream ids are stored (snapshot keys, stream
 * ids): they stay as they are so that snapshots and streams written before keep loading.
 */

// ---- Course reviews ---------------------------------------------------------------------

export const SubmitReview = defineCommand(
  'SubmitReview',
  z.object({
    courseId: z.string().min(1).max(100),
    topic: z.string().min(1).max(100),
    studentId: z.string().min(1).max(100),
    rating: z.number().int().min(1).max(5),
  }),
);
export const ReviseReview = defineCommand(
  'ReviseReview',
  z.object({
    courseId: z.string().min(1).max(100),
    studentId: z.string().min(1).max(100),
    rating: z.number().int().min(1).max(5),
  }),
);
export const WithdrawReview = defineCommand(
  'WithdrawReview',
  z.object({ courseId: z.string().min(1).max(100), studentId: z.string().min(1).max(100) }),
);

export type ReviewCommand =
  | ReturnType<typeof SubmitReview.parse>
  | ReturnType<typeof ReviseReview.parse>
  | ReturnType<typeof WithdrawReview.parse>;

export type ReviewEvent =
  | {
      type: 'ReviewSubmitted';
      data: { courseId: string; topic: string; studentId: string; rating: number };
    }
  | {
      type: 'ReviewRevised';
      data: {
        courseId: string;
        topic: string;
        studentId: string;
        rating: number;
        previousRating: number;
      };
    }
  | {
      type: 'ReviewWithdrawn';
      data: { courseId: string; topic: string; studentId: string; rating: number };
    };

/**
 * studentId -> rating. A Map, so that any string is a student id (`constructor`, `__proto__`);
 * it is written to snapshots as its entries and read back from them. Snapshots written before
 * it became a Map hold a plain object (from JSON, so its keys are own properties): those are read
 * through `Object.entries` and keep loading.
 */
class Ratings extends Map<string, number> {
  toJSON(): [string, number][] {
    return [...this];
  }
}

/** The ratings of a state: a Map, or what a snapshot holds (its entries, or an older plain object). */
function ratingsOf(state: CourseReviewsState): Ratings {
  const r = state.ratings as
    | ReadonlyMap<string, number>
    | [string, number][]
    | Record<string, number>;
  if (r instanceof Ratings) return r;
  if (r instanceof Map || Array.isArray(r)) return new Ratings(r);
  return new Ratings(Object.entries(r));
}

export interface CourseReviewsState {
  topic: string | null;
  /** studentId -> rating */
  ratings: ReadonlyMap<string, number>;
}

export const courseReviews: Decider<ReviewCommand, ReviewEvent, CourseReviewsState> = {
  name: 'course-reviews',
  // Snapshots of this version hold ratings as entries, or (written before) as a plain object.
  version: 1,
  initialState: () => ({ topic: null, ratings: new Ratings() }),
  evolve(state, event) {
    switch (event.type) {
      case 'ReviewSubmitted':
      case 'ReviewRevised': {
        const ratings = new Ratings(ratingsOf(state));
        ratings.set(event.data.studentId, event.data.rating);
        return { topic: event.data.topic, ratings };
      }
      case 'ReviewWithdrawn': {
        const ratings = new Ratings(ratingsOf(state));
        ratings.delete(event.data.studentId);
        return { topic: state.topic, ratings };
      }
      default:
        return state;
    }
  },
  decide(command, state) {
    const current = ratingsOf(state).get(command.studentId);
    switch (command.type) {
      case 'SubmitReview':
        if (current !== undefined) {
          throw new DomainError(
            `student ${command.studentId} already reviewed course ${command.courseId}; revise that review instead (PUT)`,
            'ALREADY_REVIEWED',
          );
        }
        if (state.topic !== null && state.topic !== command.topic) {
          throw new DomainError(
            `course ${command.courseId} is in topic "${state.topic}", not "${command.topic}"`,
            'TOPIC_MISMATCH',
          );
        }
        return [
          {
            type: 'ReviewSubmitted',
            data: {
              courseId: command.courseId,
              topic: command.topic,
              studentId: command.studentId,
              rating: command.rating,
            },
          },
        ];
      case 'ReviseReview':
        if (current === undefined) {
          throw new DomainError(
            `student ${command.studentId} has no review of course ${command.courseId} to revise; submit one first (POST)`,
            'REVIEW_NOT_FOUND',
          );
        }
        if (current === command.rating) return [];
        return [
          {
            type: 'ReviewRevised',
            data: {
              courseId: command.courseId,
              topic: state.topic!,
              studentId: command.studentId,
              rating: command.rating,
              previousRating: current,
            },
          },
        ];
      case 'WithdrawReview':
        if (current === undefined) return [];
        return [
          {
            type: 'ReviewWithdrawn',
            data: {
              courseId: command.courseId,
              topic: state.topic!,
              studentId: command.studentId,
              rating: current,
            },
          },
        ];
    }
  },
};

export const reviewStream = (c: { courseId: string }) => `course-reviews-${c.courseId}`;

// ---- Student wallet ---------------------------------------------------------------------

export const TopUpWallet = defineCommand(
  'TopUpWallet',
  z.object({
    studentId: z.string().min(1).max(100),
    amountCents: z.number().int().positive().max(1_000_000_00),
  }),
);
export const PayForCourse = defineCommand(
  'PayForCourse',
  z.object({
    studentId: z.string().min(1).max(100),
    courseId: z.string().min(1).max(100),
    amountCents: z.number().int().min(0).max(1_000_000_00),
  }),
);
/** A purchase saga's charge: at most once per purchase id, however often it is sent. */
export const ChargeWallet = defineCommand(
  'ChargeWallet',
  z.object({
    studentId: z.string().min(1).max(100),
    purchaseId: z.string().min(1).max(200),
    courseId: z.string().min(1).max(100),
    amountCents: z.number().int().min(0).max(1_000_000_00),
  }),
);
/** The charge's compensation: gives a purchase's charge back, once; nothing for no charge. */
export const RefundCharge = defineCommand(
  'RefundCharge',
  z.object({ studentId: z.string().min(1).max(100), purchaseId: z.string().min(1).max(200) }),
);
export type WalletCommand =
  | ReturnType<typeof TopUpWallet.parse>
  | ReturnType<typeof PayForCourse.parse>
  | ReturnType<typeof ChargeWallet.parse>
  | ReturnType<typeof RefundCharge.parse>;
export type WalletEvent =
  | { type: 'WalletToppedUp'; data: { studentId: string; amountCents: number } }
  | { type: 'CoursePurchased'; data: { studentId: string; courseId: string; amountCents: number } }
  | {
      type: 'WalletCharged';
      data: { studentId: string; purchaseId: string; courseId: string; amountCents: number };
    }
  | {
      type: 'ChargeRefunded';
      data: { studentId: string; purchaseId: string; courseId: string; amountCents: number };
    };
export interface WalletState {
  balanceCents: number;
  courses: string[];
  /**
   * Charges by purchase id: what was charged and whether it was refunded. Absent from
   * snapshots written before purchases were sagas (read as none).
   */
  charges?: Record<string, { courseId: string; amountCents: number; refunded: boolean }>;
}

export const studentWallet: Decider<WalletCommand, WalletEvent, WalletState> = {
  name: 'student-wallet',
  version: 1,
  initialState: () => ({ balanceCents: 0, courses: [] }),
  evolve(state, event) {
    switch (event.type) {
      case 'WalletToppedUp':
        return { ...state, balanceCents: state.balanceCents + event.data.amountCents };
      case 'CoursePurchased':
        return {
          ...state,
          balanceCents: state.balanceCents - event.data.amountCents,
          courses: [...state.courses, event.data.courseId],
        };
      case 'WalletCharged': {
        const { purchaseId, courseId, amountCents } = event.data;
        return {
          balanceCents: state.balanceCents - amountCents,
          courses: [...state.courses, courseId],
          charges: { ...state.charges, [purchaseId]: { courseId, amountCents, refunded: false } },
        };
      }
      case 'ChargeRefunded': {
        const { purchaseId, courseId, amountCents } = event.data;
        const at = state.courses.indexOf(courseId);
        return {
          balanceCents: state.balanceCents + amountCents,
          courses: state.courses.filter((_, i) => i !== at),
          charges: { ...state.charges, [purchaseId]: { courseId, amountCents, refunded: true } },
        };
      }
      default:
        return state;
    }
  },
  decide(command, state) {
    switch (command.type) {
      case 'TopUpWallet':
        return [
          {
            type: 'WalletToppedUp',
            data: { studentId: command.studentId, amountCents: command.amountCents },
          },
        ];
      case 'PayForCourse':
        if (state.courses.includes(command.courseId)) return [];
        if (state.balanceCents < command.amountCents) {
          throw new DomainError(
            `wallet of ${command.studentId} holds ${state.balanceCents} cents, the course costs ${command.amountCents}: top it up first`,
            'INSUFFICIENT_FUNDS',
          );
        }
        return [
          {
            type: 'CoursePurchased',
            data: {
              studentId: command.studentId,
              courseId: command.courseId,
              amountCents: command.amountCents,
            },
          },
        ];
      case 'ChargeWallet': {
        if (Object.hasOwn(state.charges ?? {}, command.purchaseId)) return [];
        if (state.courses.includes(command.courseId)) {
          throw new DomainError(
            `student ${command.studentId} already bought course ${command.courseId}`,
            'ALREADY_PURCHASED',
          );
        }
        if (state.balanceCents < command.amountCents) {
          throw new DomainError(
            `wallet of ${command.studentId} holds ${state.balanceCents} cents, the course costs ${command.amountCents}: top it up first`,
            'INSUFFICIENT_FUNDS',
          );
        }
        const { studentId, purchaseId, courseId, amountCents } = command;
        return [{ type: 'WalletCharged', data: { studentId, purchaseId, courseId, amountCents } }];
      }
      case 'RefundCharge': {
        const charge = state.charges?.[command.purchaseId];
        if (!charge || charge.refunded || !Object.hasOwn(state.charges!, command.purchaseId)) {
          return [];
        }
        return [
          {
            type: 'ChargeRefunded',
            data: {
              studentId: command.studentId,
              purchaseId: command.purchaseId,
              courseId: charge.courseId,
              amountCents: charge.amountCents,
            },
          },
        ];
      }
    }
  },
};

export const walletStream = (c: { studentId: string }) => `wallet-${c.studentId}`;
