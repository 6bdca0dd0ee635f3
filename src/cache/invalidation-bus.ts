/**
 * The port that carries invalidations between instances sharing an L2: each message names keys,
 * tags or "everything" in a namespace; never values (a value travels through L2, where the
 * receiver will find it on its next miss). BentoCache's bus works the same way.
 */
export interface Invalidation {
  /** Instance that sent it: an instance ignores its own messages. */
  origin: string;
  namespace: string;
  keys?: string[];
  tags?: string[];
  clear?: boolean;
}

export interface InvalidationBus {
  readonly kind: string;
  publish(message: Invalidation): Promise<void>;
  /**
   * Receive messages; `onGap` is called when the connection drops (messages may be lost from
   * then on) and again when it is back: the receiver must drop every L1 entry each time.
   */
  subscribe(
    onMessage: (message: Invalidation) => void,
    onGap: (state: 'down' | 'up') => void,
  ): Promise<void>;
  close(): Promise<void>;
}
