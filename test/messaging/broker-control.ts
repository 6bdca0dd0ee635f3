import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { eventually } from '../../src/testing/eventually.js';

/**
 * Stop and start this machine's NATS and RabbitMQ for fault tests (messaging is their only
 * user here). Both are always left running: `restart*` waits until the server answers again.
 * Never used on PostgreSQL or Redis.
 */
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ok(cmd: string, args: string[]): Promise<boolean> {
  try {
    await run(cmd, args, { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

const NATS_ARGS = [
  '--start',
  '--oknodo',
  '--background',
  '--exec',
  '/usr/sbin/nats-server',
  '--',
  '-a',
  '127.0.0.1',
  '-p',
  '4222',
  '-js',
  '-sd',
  '/var/lib/nats-server',
  '-l',
  '/var/log/nats-server.log',
];

async function natsUp(): Promise<boolean> {
  const { createConnection } = await import('node:net');
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port: 4222 }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function stopNats(): Promise<void> {
  await ok('start-stop-daemon', ['--stop', '--oknodo', '--exec', '/usr/sbin/nats-server']);
  await eventually(async () => !(await natsUp()), 'NATS to stop', {
    timeoutMs: 20_000,
    intervalMs: 200,
  });
}

export async function startNats(): Promise<void> {
  await ok('start-stop-daemon', NATS_ARGS);
  await eventually(natsUp, 'NATS to start', { timeoutMs: 30_000, intervalMs: 200 });
}

/** Stop NATS, stay down `downMs`, start it again; resolves once it accepts connections. */
export async function restartNats(downMs = 500): Promise<void> {
  try {
    await stopNats();
    await sleep(downMs);
  } finally {
    await startNats();
  }
}

export async function stopRabbit(): Promise<void> {
  await ok('rabbitmqctl', ['stop']);
  await eventually(async () => !(await ok('rabbitmqctl', ['status'])), 'RabbitMQ to stop', {
    timeoutMs: 60_000,
    intervalMs: 200,
  });
}

export async function startRabbit(): Promise<void> {
  await ok('rabbitmq-server', ['-detached']);
  await eventually(
    () => ok('rabbitmqctl', ['await_startup', '--timeout', '10']),
    'RabbitMQ to start',
    { timeoutMs: 90_000, intervalMs: 200 },
  );
}

export async function restartRabbit(downMs = 500): Promise<void> {
  try {
    await stopRabbit();
    await sleep(downMs);
  } finally {
    await startRabbit();
  }
}
