/**
 * A bounded set of recently handled ids, for brokers without server-side dedup: a repeat of a
 * recently acknowledged id is acknowledged without running the handler again. Only a
 * process-local best effort; the SQL inbox is the durable guarantee.
 */
export class RecentIds {
  readonly #set = new Set<string>();
  constructor(readonly capacity = 10_000) {}
  has(id: string): boolean {
    return this.#set.has(id);
  }
  add(id: string): void {
    if (this.#set.has(id)) return;
    this.#set.add(id);
    if (this.#set.size > this.capacity) {
      const first = this.#set.values().next().value as string;
      this.#set.delete(first);
    }
  }
}
