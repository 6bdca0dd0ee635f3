import { afterAll, beforeAll, describe } from 'vitest';
import { MemoryEventStore } from '../../src/events/index.js';
import { MemoryBroker } from '../../src/messaging/index.js';
import { brokerContract, eventStoreContract } from '../../src/testing/index.js';

// Your adapters stand here: the in-process ones play their part in this example.

describe('event store contract: my event store', () => {
  // Every store `open` returns sees the same events, as stores on one database do.
  const shared = new MemoryEventStore();
  eventStoreContract({
    open: async ({ clock, upcasters }) =>
      new MemoryEventStore({ clock, upcasters, shareWith: shared }),
  });
});

describe('broker contract: my broker', () => {
  let broker: MemoryBroker;
  beforeAll(async () => {
    broker = await MemoryBroker.open();
  });
  afterAll(() => broker.close());
  brokerContract(() => broker);
});
