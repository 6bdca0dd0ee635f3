import { connect, createServer, type Server, type Socket } from 'node:net';

export interface DelayProxyOptions {
  /** Where connections go: a loopback port. */
  targetPort: number;
  targetHost?: string;
  /** Round trip added, in ms: each direction's bytes are held for half of it. */
  roundTripMs: number;
  /** Port to listen on (loopback). Default: any free one. */
  port?: number;
}

export interface DelayProxy {
  readonly port: number;
  /** Change the added round trip for bytes that arrive from now on. */
  setRoundTrip(ms: number): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy that adds latency (this machine has no netem): every chunk is forwarded
 * after `roundTripMs / 2` in its own direction, in arrival order, so a request and its answer
 * cross it in one added round trip. For simulating a remote region between a standby and its
 * primary, or a client and a server, in tests and benchmarks.
 */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  let oneWay = options.roundTripMs / 2;
  const sockets = new Set<Socket>();
  const pipe = (from: Socket, to: Socket) => {
    // Chunks leave in order: each waits until its own time and after the one before it.
    let last = 0;
    from.on('data', (chunk) => {
      const at = Math.max(performance.now() + oneWay, last);
      last = at;
      setTimeout(
        () => {
          if (!to.destroyed) to.write(chunk);
        },
        Math.max(0, at - performance.now()),
      );
    });
    from.on('end', () => setTimeout(() => to.end(), Math.max(0, last - performance.now())));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), Math.max(0, last - performance.now())));
  };
  const server: Server = createServer((client) => {
    const upstream = connect(options.targetPort, options.targetHost ?? '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    setRoundTrip(ms: number) {
      oneWay = ms / 2;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
