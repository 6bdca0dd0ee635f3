/**
 * `cloud-data-patterns/testing`: the contract suites an adapter of a port passes (a third-party
 * one too), and the helpers they and this project's tests share. The suites register vitest
 * cases, so vitest is needed (an optional peer dependency); no engine client is imported here:
 * `createTempDatabase` loads `pg` when it is called.
 * Scripts outside vitest (benchmarks, fault runs) import `eventually.js` and `temp-database.js`
 * directly, as this entry loads vitest.
 */
export type { BrokerFactory } from './broker-contract.js';
export { brokerContract, uniq } from './broker-contract.js';
export type { DelayProxy, DelayProxyOptions } from './delay-proxy.js';
export { startDelayProxy } from './delay-proxy.js';
export type { StoreFactory } from './event-store-contract.js';
export { eventStoreContract, sid, waitReadable } from './event-store-contract.js';
export { eventually } from './eventually.js';
export type { IdempotencyStoreFactory } from './idempotency-store-contract.js';
export { idempotencyStoreContract } from './idempotency-store-contract.js';
export type { SqlHarness } from './sql-client-contract.js';
export { sqlClientContract } from './sql-client-contract.js';
export type { TempDatabase } from './temp-database.js';
export { createTempDatabase } from './temp-database.js';
