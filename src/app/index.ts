export type { ErrorDoc, ResponseDoc, RouteDoc } from './api-docs.js';
export { documented, refusal } from './api-docs.js';
export type { IssuedKey, Principal, Role } from './auth.js';
export { ApiKeys, authMigrations, roles } from './auth.js';
export type {
  EngineStatus,
  FeatureContext,
  FeatureHandle,
  Panel,
  PlatformFeature,
} from './feature.js';
export type { Course } from './features/catalog.js';
export { CatalogService, catalogFeature } from './features/catalog.js';
export { defaultFeatures } from './features/index.js';
export {
  ForbiddenError,
  installErrorHandler,
  NotFoundError,
  parseInput,
  RequestRefusedError,
  singleLine,
  UnauthenticatedError,
} from './http-errors.js';
export type { Platform, PlatformOptions, PlatformRoute } from './platform.js';
export { dashboardDir, PortInUseError, platformMigrations, startPlatform } from './platform.js';
