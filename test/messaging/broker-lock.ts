import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../../src/testing/eventually.js';

/**
 * Test files that use the real NATS / RabbitMQ run one at a time (vitest runs files in
 * parallel, and the fault tests restart the brokers). A lock directory holding the owner's
 * pid; a lock left by a dead process is taken over.
 */
const LOCK = join(tmpdir(), 'cdp-messaging-brokers.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock: the unlock function, or `undefined` while a live process holds it. */
async function tryLock(): Promise<(() => Promise<void>) | undefined> {
  try {
    await mkdir(LOCK);
    await writeFile(join(LOCK, 'pid'), String(process.pid));
    return () => rm(LOCK, { recursive: true, force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = Number.parseInt(await readFile(join(LOCK, 'pid'), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && !alive(pid)) {
      await rm(LOCK, { recursive: true, force: true });
      return tryLock();
    }
    return undefined;
  }
}

export function lockBrokers(timeoutMs = 600_000): Promise<() => Promise<void>> {
  return eventually(tryLock, 'the lock on the brokers', { timeoutMs, intervalMs: 200 });
}
