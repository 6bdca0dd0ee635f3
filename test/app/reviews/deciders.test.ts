import { describe, expect, it } from 'vitest';
import {
  ChargeWallet,
  courseReviews,
  PayForCourse,
  RefundCharge,
  type ReviewEvent,
  ReviseReview,
  SubmitReview,
  studentWallet,
  TopUpWallet,
  WithdrawReview,
} from '../../../src/app/reviews/deciders.js';
import { ValidationError } from '../../../src/core/errors.js';
import { DomainError, deciderSpec } from '../../../src/cqrs/index.js';

const reviews = deciderSpec(courseReviews);
const wallet = deciderSpec(studentWallet);
const submitted = (studentId: string, rating: number): ReviewEvent => ({
  type: 'ReviewSubmitted',
  data: { courseId: 'c1', topic: 'sql', studentId, rating },
});

describe('course reviews decider', () => {
  it('given no reviews, when a student submits one, then ReviewSubmitted', () => {
    reviews
      .given([])
      .when(SubmitReview.parse({ courseId: 'c1', topic: 'sql', studentId: 's1', rating: 4 }))
      .thenEvents([submitted('s1', 4)]);
  });

  it('given a review by the student, when they submit again, then refused', () => {
    reviews
      .given([submitted('s1', 4)])
      .when(SubmitReview.parse({ courseId: 'c1', topic: 'sql', studentId: 's1', rating: 5 }))
      .thenThrows(DomainError, /already reviewed/);
  });

  it('given a review in another topic, when a review names a different topic, then refused', () => {
    reviews
      .given([submitted('s1', 4)])
      .when(SubmitReview.parse({ courseId: 'c1', topic: 'nosql', studentId: 's2', rating: 5 }))
      .thenThrows(DomainError, /topic "sql"/);
  });

  it('given a review, when revised, then ReviewRevised with the previous rating; same rating decides nothing', () => {
    reviews
      .given([submitted('s1', 4)])
      .when(ReviseReview.parse({ courseId: 'c1', studentId: 's1', rating: 2 }))
      .thenEvents([
        {
          type: 'ReviewRevised',
          data: { courseId: 'c1', topic: 'sql', studentId: 's1', rating: 2, previousRating: 4 },
        },
      ]);
    reviews
      .given([submitted('s1', 4)])
      .when(ReviseReview.parse({ courseId: 'c1', studentId: 's1', rating: 4 }))
      .thenEvents([]);
  });

  it('given no review, when revised, then refused; when withdrawn, then nothing', () => {
    reviews
      .given([])
      .when(ReviseReview.parse({ courseId: 'c1', studentId: 's1', rating: 2 }))
      .thenThrows(DomainError, /no review/);
    reviews
      .given([])
      .when(WithdrawReview.parse({ courseId: 'c1', studentId: 's1' }))
      .thenEvents([]);
  });

  it('given a withdrawn review, when the student submits again, then accepted', () => {
    reviews
      .given([
        submitted('s1', 4),
        {
          type: 'ReviewWithdrawn',
          data: { courseId: 'c1', topic: 'sql', studentId: 's1', rating: 4 },
        },
      ])
      .when(SubmitReview.parse({ courseId: 'c1', topic: 'sql', studentId: 's1', rating: 3 }))
      .thenEvents([submitted('s1', 3)]);
  });

  it('the spec itself fails on a wrong expectation', () => {
    expect(() =>
      reviews
        .given([])
        .when(SubmitReview.parse({ courseId: 'c1', topic: 'sql', studentId: 's1', rating: 4 }))
        .thenEvents([submitted('s1', 5)]),
    ).toThrow(/expected events/);
  });
});

describe('student wallet decider', () => {
  it('given top-ups, when paying within the balance, then CoursePurchased', () => {
    wallet
      .given([{ type: 'WalletToppedUp', data: { studentId: 's1', amountCents: 5000 } }])
      .when(PayForCourse.parse({ studentId: 's1', courseId: 'c1', amountCents: 3000 }))
      .thenEvents([
        { type: 'CoursePurchased', data: { studentId: 's1', courseId: 'c1', amountCents: 3000 } },
      ]);
  });

  it('given too small a balance, when paying, then refused; a course already bought is not bought twice', () => {
    wallet
      .given([{ type: 'WalletToppedUp', data: { studentId: 's1', amountCents: 1000 } }])
      .when(PayForCourse.parse({ studentId: 's1', courseId: 'c1', amountCents: 3000 }))
      .thenThrows(DomainError, /top it up/);
    wallet
      .given([
        { type: 'WalletToppedUp', data: { studentId: 's1', amountCents: 9000 } },
        { type: 'CoursePurchased', data: { studentId: 's1', courseId: 'c1', amountCents: 3000 } },
      ])
      .when(PayForCourse.parse({ studentId: 's1', courseId: 'c1', amountCents: 3000 }))
      .thenEvents([]);
  });

  it('top-up decides WalletToppedUp', () => {
    wallet
      .given([])
      .when(TopUpWallet.parse({ studentId: 's1', amountCents: 100 }))
      .thenEvents([{ type: 'WalletToppedUp', data: { studentId: 's1', amountCents: 100 } }]);
  });
});

describe('commands', () => {
  it('malformed commands are ValidationErrors naming the fields', () => {
    const err = (() => {
      try {
        SubmitReview.parse({ courseId: '', topic: 'sql', studentId: 's1', rating: 9 });
      } catch (e) {
        return e;
      }
    })() as ValidationError;
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.issues.map((i) => i.path).sort()).toEqual(['courseId', 'rating']);
    expect(() => TopUpWallet.parse(null)).toThrow(ValidationError);
  });

  const topUp = { type: 'WalletToppedUp' as const, data: { studentId: 's1', amountCents: 5000 } };
  const charged = {
    type: 'WalletCharged' as const,
    data: { studentId: 's1', purchaseId: 'p1', courseId: 'c1', amountCents: 3000 },
  };
  const charge = (purchaseId: string, courseId = 'c1') =>
    ChargeWallet.parse({ studentId: 's1', purchaseId, courseId, amountCents: 3000 });

  it('a purchase is charged once per purchase id; another purchase of the same course is refused', () => {
    wallet.given([topUp]).when(charge('p1')).thenEvents([charged]);
    wallet.given([topUp, charged]).when(charge('p1')).thenEvents([]);
    wallet
      .given([topUp, charged])
      .when(charge('p2'))
      .thenThrows(DomainError, /already bought/);
    wallet
      .given([topUp, charged])
      .when(charge('p2', 'c2'))
      .thenThrows(DomainError, /top it up/);
  });

  it('a refund gives a charge back once; a refund of no charge decides nothing', () => {
    const refund = RefundCharge.parse({ studentId: 's1', purchaseId: 'p1' });
    const refunded = { ...charged, type: 'ChargeRefunded' as const };
    wallet.given([topUp, charged]).when(refund).thenEvents([refunded]);
    wallet.given([topUp, charged, refunded]).when(refund).thenEvents([]);
    wallet.given([topUp]).when(refund).thenEvents([]);
    // A refunded purchase is not charged again under its id; the course may be bought anew.
    wallet.given([topUp, charged, refunded]).when(charge('p1')).thenEvents([]);
    wallet
      .given([topUp, charged, refunded])
      .when(charge('p3'))
      .thenEvents([{ ...charged, data: { ...charged.data, purchaseId: 'p3' } }]);
  });
});
