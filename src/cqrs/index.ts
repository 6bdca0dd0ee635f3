export * from './command.js';
export * from './command-handler.js';
export * from './course-reviews.js';
export * from './decider.js';
export * from './projection.js';
export * from './projection-rebuild.js';
export * from './review-views.js';
