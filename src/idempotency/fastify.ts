/**
 * cloud-data-patterns/idempotency/fastify: idempotency keys as a Fastify plugin. A separate
 * entry so that the framework-free core (`cloud-data-patterns/idempotency`) names no Fastify type.
 */
export type { FastifyIdempotencyOptions } from './fastify-idempotency.js';
export { fastifyIdempotency } from './fastify-idempotency.js';
