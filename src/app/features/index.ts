import type { PlatformFeature } from '../feature.js';
import { catalogFeature } from './catalog.js';

/** The reference platform's features, started in this order (later ones may use earlier ones' services). */
export const defaultFeatures: PlatformFeature[] = [catalogFeature];
