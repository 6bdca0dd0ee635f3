export * from './feature.js';
export { CatalogService, type Course, catalogFeature } from './features/catalog.js';
export { defaultFeatures } from './features/index.js';
export * from './http-errors.js';
export * from './platform.js';
