import type { PlatformFeature } from '../feature.js';
import { cacheFeature } from './cache.js';
import { catalogFeature } from './catalog.js';
import { enrollmentFeature } from './enrollment.js';
import { mediaFeature } from './media.js';
import { payoutsFeature } from './payouts.js';
import { purchasesFeature } from './purchases.js';
import { quorumFeature } from './quorum.js';
import { regionsFeature } from './regions.js';
import { replicationFeature } from './replication.js';
import { reviewsFeature } from './reviews.js';
import { shardingFeature } from './sharding.js';
import { workflowsFeature } from './workflows.js';

/** The reference platform's features, started in this order (later ones may use earlier ones' services). */
export const defaultFeatures: PlatformFeature[] = [
  catalogFeature,
  cacheFeature,
  reviewsFeature,
  shardingFeature,
  enrollmentFeature,
  mediaFeature,
  workflowsFeature,
  purchasesFeature,
  payoutsFeature,
  quorumFeature,
  regionsFeature,
  replicationFeature,
];
