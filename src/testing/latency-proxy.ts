import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy that delays every byte by a fixed one-way time in each direction: the
 * network between two "regions" on one machine, for a replica, a broker or a client (this
 * machine has no netem). A connection to the proxy opens one to the target; what either side
 * sends arrives at the other `oneWayMs` later, in order, with nothing lost or merged out of
 * order. A round trip through it costs at least `2 × oneWayMs`.
 *
 * Bandwidth is not limited; a direction holding more than `maxQueuedBytes` stops reading from
 * its sender until the delayed bytes are written (TCP backpressure, so a fast sender cannot
 * grow the proxy's memory without bound).
 */
export interface LatencyProxyOptions {
  /** Where connections go. */
  target: { host?: string; port: number };
  /** Added to each direction, ms (a round trip adds twice this). Default 0. */
  oneWayMs?: number;
  /** The proxy's own port on 127.0.0.1 (default: any free port). */
  port?: number;
  /** Per direction and connection, bytes held before reading pauses (default 8 MiB). */
  maxQueuedBytes?: number;
}

export interface LatencyProxy {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** The one-way delay in force; `setDelay` changes it for bytes read from then on. */
  readonly oneWayMs: number;
  setDelay(oneWayMs: number): void;
  /** Open connections through the proxy. */
  readonly connections: number;
  /** Stop listening and cut every connection through the proxy. */
  close(): Promise<void>;
}

function checkDelay(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0 || ms > 60_000) {
    throw new RangeError(
      `latency proxy: the one-way delay must be a number of ms from 0 to 60000, got ${ms}`,
    );
  }
  return ms;
}

/** One direction of one connection: bytes read from `from`, written to `to` when due. */
function pipeDelayed(from: Socket, to: Socket, delay: () => number, maxQueuedBytes: number): void {
  const queue: { due: number; chunk: Buffer }[] = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      queued -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (queued <= maxQueuedBytes && from.isPaused()) from.resume();
    if (queue.length > 0) schedule();
    else if (ended && !to.destroyed) to.end();
  };
  const schedule = () => {
    if (timer !== undefined || queue.length === 0) return;
    timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };
  from.on('data', (chunk: Buffer) => {
    // Due times never go backwards, so a shorter delay set mid-stream cannot reorder bytes.
    const last = queue.length > 0 ? queue[queue.length - 1]!.due : 0;
    queue.push({ due: Math.max(last, performance.now() + delay()), chunk });
    queued += chunk.length;
    if (queued > maxQueuedBytes) from.pause();
    schedule();
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0 && !to.destroyed) to.end();
  });
  from.on('close', () => {
    // The sender is gone: what it sent still arrives, then the other side is ended.
    ended = true;
    if (queue.length === 0 && !to.destroyed) to.end();
  });
}

/** Starts a latency proxy on 127.0.0.1 in front of `target`. */
export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  let oneWayMs = checkDelay(options.oneWayMs ?? 0);
  const maxQueuedBytes = options.maxQueuedBytes ?? 8 * 1024 * 1024;
  const targetHost = options.target.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ host: targetHost, port: options.target.port, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      // A reset on one side cuts the other: a broken link, as the peers would see it.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    pipeDelayed(client, upstream, () => oneWayMs, maxQueuedBytes);
    pipeDelayed(upstream, client, () => oneWayMs, maxQueuedBytes);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') {
    server.close();
    throw new Error('latency proxy: the server has no TCP address');
  }
  return {
    host: '127.0.0.1',
    port: address.port,
    get oneWayMs() {
      return oneWayMs;
    },
    setDelay(ms: number) {
      oneWayMs = checkDelay(ms);
    },
    get connections() {
      return Math.floor(sockets.size / 2);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
