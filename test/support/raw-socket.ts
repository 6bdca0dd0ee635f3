import { connect, type Socket } from 'node:net';

/**
 * Raw TCP clients for the tests that hold, trickle or overload connections to a local HTTP
 * server: what no HTTP client library lets a test do on purpose.
 */
export interface RawConnection {
  socket: Socket;
  /** Everything the server sent so far, one char per byte (latin1). */
  received(): string;
  /** Resolves with everything the server sent once the connection closes. */
  closed: Promise<string>;
}

/** Connect to 127.0.0.1:`port`; resolves once connected (rejects if the connect fails). */
export function openRaw(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
    });
    const closed = new Promise<string>((r) => socket.on('close', () => r(data)));
    // After the connect, an error (a reset by the server) shows as the close.
    socket.on('error', () => {});
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
  });
}

/**
 * Write `text` one byte at a time, `everyMs` apart, until it is all written or the socket
 * closes. Returns a function that stops early.
 */
export function trickle(socket: Socket, text: string, everyMs = 50): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
  return () => clearInterval(timer);
}
