import { createHash } from 'node:crypto';
import { z } from 'zod';
import { EventTypes } from '../../messaging/index.js';

/**
 * What regions send each other. Deltas travel through each region's transactional outbox
 * (written with the update, published by the relay, applied once through the receiver's
 * inbox); digests and states are anti-entropy and go straight to the broker (a lost one is
 * sent again next round).
 */
export const mmTypes = new EventTypes();

const hlc = z.object({ wall: z.number(), logical: z.number().int(), node: z.string() });
const vv = z.record(z.string(), z.number().int().nonnegative());

export const deltaMessage = mmTypes.define(
  'replication.mm.delta',
  z.object({
    origin: z.string().min(1),
    key: z.string().min(1),
    type: z.string().min(1),
    delta: z.unknown(),
    /** The sender's version vector of this object after the update. */
    vv,
    stamp: hlc,
  }),
);

export const digestMessage = mmTypes.define(
  'replication.mm.digest',
  z.object({ origin: z.string().min(1), digests: z.record(z.string(), z.string()) }),
);

export const stateMessage = mmTypes.define(
  'replication.mm.state',
  z.object({
    origin: z.string().min(1),
    /** The region asked (it answers with what it has more of); absent: nobody answers. */
    to: z.string().optional(),
    states: z.array(
      z.object({ key: z.string().min(1), type: z.string().min(1), state: z.unknown(), vv }),
    ),
    /** Keys the sender lacks: the receiver sends their states. */
    want: z.array(z.string()),
  }),
);

/** Digest of a state: SHA-256 of its canonical JSON (states serialize with sorted keys). */
export function stateDigest(state: unknown): string {
  return createHash('sha256').update(JSON.stringify(state)).digest('base64url').slice(0, 22);
}
