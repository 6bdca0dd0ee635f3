import { describe } from 'vitest';
import type { EvictionPolicy } from '../../src/cache/local-store.js';
import { MemoryCacheStore } from '../../src/cache/memory-cache-store.js';
import { storeContract } from './store-contract.js';

const policies: EvictionPolicy[] = ['lru', 'lfu', 'fifo', 'ttl', 'w-tinylfu'];

for (const policy of policies) {
  describe(`CacheStore contract: memory (${policy})`, () => {
    storeContract(
      async () =>
        new MemoryCacheStore({
          policy,
          maxEntries: 1000,
          expiryResolutionMs: 10,
          ...(policy === 'ttl' ? { ttlMs: 3_600_000 } : {}),
        }),
      (ms) => new Promise((r) => setTimeout(r, ms)),
    );
  });
}
