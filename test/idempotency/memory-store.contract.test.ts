import { describe } from 'vitest';
import { MemoryIdempotencyStore } from '../../src/idempotency/index.js';
import { idempotencyStoreContract } from '../../src/testing/index.js';

describe('IdempotencyStore contract: memory', () => {
  const store = new MemoryIdempotencyStore();
  idempotencyStoreContract(() => store);
});
