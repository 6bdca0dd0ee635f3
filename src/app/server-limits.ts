import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';

/**
 * What the platform's HTTP server allows a client: the header and whole-request deadlines and
 * the keep-alive idle time are Node's own (checked every `connectionsCheckingInterval`, set here
 * from the shortest deadline so that a cut comes close to it); the body rate and the connection
 * cap per client address are added by `limitClients`.
 */
export function nodeServerOptions(http: Config['http']): ServerOptions {
  return {
    headersTimeout: http.headersTimeoutMs,
    requestTimeout: http.requestTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(
      50,
      Math.min(1000, Math.floor(Math.min(http.headersTimeoutMs, http.requestTimeoutMs) / 4)),
    ),
  };
}

/** The first second of a body is not measured: a client may start slowly. */
const BODY_GRACE_MS = 1000;
const CHECK_EVERY_MS = 250;

function refuse(socket: Socket, status: string, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

/**
 * Caps the connections one client address holds open (one more is answered 503 and closed)
 * and cuts off a request body arriving slower than `minBodyBytesPerSecond` on average (408).
 * The body rate is read from the socket's byte count, so the body itself is left to Fastify.
 * Returns a function that stops the body-rate checks.
 */
export function limitClients(server: Server, http: Config['http'], clock: Clock): () => void {
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const open = (perClient.get(address) ?? 0) + 1;
    perClient.set(address, open);
    socket.once('close', () => {
      const left = (perClient.get(address) ?? 1) - 1;
      if (left <= 0) perClient.delete(address);
      else perClient.set(address, left);
    });
    if (open > http.maxConnectionsPerClient)
      refuse(
        socket,
        '503 Service Unavailable',
        'TOO_MANY_CONNECTIONS',
        `this address already holds ${http.maxConnectionsPerClient} connections; reuse them or close some`,
      );
  });

  const minRate = http.minBodyBytesPerSecond;
  if (minRate === 0) return () => {};
  const bodies = new Map<IncomingMessage, { startedAt: number; startBytes: number }>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const length = Number(req.headers['content-length'] ?? 0);
    if (!(length > 0) && req.headers['transfer-encoding'] === undefined) return;
    bodies.set(req, { startedAt: clock.now(), startBytes: req.socket.bytesRead });
    const done = () => bodies.delete(req);
    req.once('end', done);
    req.once('close', done);
    res.once('finish', done);
  });
  const timer = setInterval(() => {
    const now = clock.now();
    for (const [req, b] of bodies) {
      if (req.complete || req.socket.destroyed) {
        bodies.delete(req);
        continue;
      }
      const elapsed = now - b.startedAt;
      if (elapsed < BODY_GRACE_MS) continue;
      const received = req.socket.bytesRead - b.startBytes;
      if (received >= (minRate * elapsed) / 1000) continue;
      bodies.delete(req);
      refuse(
        req.socket,
        '408 Request Timeout',
        'BODY_TOO_SLOW',
        `the request body arrived slower than ${minRate} bytes per second; send it faster`,
      );
    }
  }, CHECK_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
