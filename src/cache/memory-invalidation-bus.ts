import type { Invalidation, InvalidationBus } from './invalidation-bus.js';

/**
 * An in-process bus: instances made with the same hub see each other's invalidations. For
 * several caches in one process (and tests); across processes use RedisInvalidationBus.
 */
export class MemoryBusHub {
  readonly subscribers = new Set<(m: Invalidation) => void>();

  bus(): InvalidationBus {
    const hub = this;
    let mine: ((m: Invalidation) => void) | undefined;
    return {
      kind: 'memory',
      async publish(message) {
        for (const s of [...hub.subscribers]) queueMicrotask(() => s(structuredClone(message)));
      },
      async subscribe(onMessage) {
        mine = onMessage;
        hub.subscribers.add(onMessage);
      },
      async close() {
        if (mine) hub.subscribers.delete(mine);
      },
    };
  }
}
