export * from './clock.js';
export * from './config.js';
export * from './errors.js';
export * from './ids.js';
export * from './lifecycle.js';
export * from './logger.js';
export * from './metrics.js';
export * from './retry.js';
