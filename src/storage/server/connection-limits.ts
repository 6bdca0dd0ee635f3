/**
 * What a slow or greedy client may hold: the time to send a request's headers, a minimum
 * body rate while the server waits for the body, the idle time of a connection, and the
 * number of open connections per client address.
 *
 * There is no whole-request time limit: a long upload at a good rate is legitimate. A body
 * trickled below the minimum rate is cut instead, whatever its length. The rate is only held
 * against the client while the server is waiting for bytes, not while the server itself is
 * behind (the request's buffer full).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '../../core/index.js';

export interface ConnectionLimits {
  /** All headers of a request within this, or 408 and the connection closes (default 10 s). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection closes after this (default 5 s). */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way for this long is closed (default 120 s). */
  idleTimeoutMs: number;
  /**
   * While a request body is awaited, at least `minBodyBytes` must arrive in each window of
   * `bodyRateWindowMs`, or the server answers 408 RequestTimeout and closes the connection
   * (default 8 KiB per 10 s: a body trickled at 1 byte/s is cut after 10 s).
   */
  minBodyBytes: number;
  bodyRateWindowMs: number;
  /** Open connections per client address; more are answered 503 SlowDown and closed (default 64). */
  maxConnectionsPerClient: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
  minBodyBytes: 8 * 1024,
  bodyRateWindowMs: 10_000,
  maxConnectionsPerClient: 64,
};

/** Requests cut for a trickled body, and connections refused over the per-client cap. */
const cut = new WeakSet<IncomingMessage>();
const refused = new WeakSet<Socket>();

export function wasCutForRate(req: IncomingMessage): boolean {
  return cut.has(req);
}

export function isRefusedConnection(s: Socket): boolean {
  return refused.has(s);
}

function rawAnswer(status: string, code: string, message: string): string {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  return `HTTP/1.1 ${status}\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Count connections per client address and refuse those over the cap. */
export function guardConnections(server: Server, l: ConnectionLimits): void {
  const open = new Map<string, number>();
  server.on('connection', (sock: Socket) => {
    const ip = sock.remoteAddress ?? '';
    const n = open.get(ip) ?? 0;
    if (n >= l.maxConnectionsPerClient) {
      refused.add(sock);
      sock.end(
        rawAnswer(
          '503 Service Unavailable',
          'SlowDown',
          `at most ${l.maxConnectionsPerClient} connections per client address; reuse or close connections`,
        ),
        () => sock.destroy(),
      );
      return;
    }
    open.set(ip, n + 1);
    sock.once('close', () => {
      const m = (open.get(ip) ?? 1) - 1;
      if (m === 0) open.delete(ip);
      else open.set(ip, m);
    });
  });
}

/**
 * Watch the body of `req`: each window, at least `minBodyBytes` must have arrived unless the
 * server is the one behind. A request without a body is not watched.
 */
export function watchBodyRate(
  req: IncomingMessage,
  res: ServerResponse,
  l: ConnectionLimits,
  clock: Clock,
): void {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  if (!hasBody || l.minBodyBytes <= 0) return;
  const sock = req.socket;
  const stop = new AbortController();
  const end = () => stop.abort();
  req.once('end', end);
  req.once('close', end);
  void (async () => {
    let last = sock.bytesRead;
    for (;;) {
      try {
        await clock.sleep(l.bodyRateWindowMs, stop.signal);
      } catch {
        return;
      }
      if (req.complete || sock.destroyed) return;
      const got = sock.bytesRead - last;
      last = sock.bytesRead;
      const serverBehind = req.readableLength >= req.readableHighWaterMark;
      if (got >= l.minBodyBytes || serverBehind) continue;
      cut.add(req);
      const msg = `the body arrived at fewer than ${l.minBodyBytes} bytes per ${l.bodyRateWindowMs} ms; send it faster`;
      if (!res.headersSent) {
        res.shouldKeepAlive = false;
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>RequestTimeout</Code><Message>${msg}</Message></Error>`;
        res.writeHead(408, {
          'Content-Type': 'application/xml',
          'Content-Length': Buffer.byteLength(body),
          Connection: 'close',
        });
        res.end(body, () => sock.destroy());
      } else {
        sock.destroy();
      }
      return;
    }
  })();
}
