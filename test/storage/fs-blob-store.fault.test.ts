/**
 * Crash safety of the filesystem store: a writer SIGKILLed in the middle of a put never leaves
 * a half object visible; the previous version stays readable and listing shows no debris.
 * CDP_FAULT_SCALE multiplies the number of kills (default 5).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FsBlobStore } from '../../src/storage/blob/fs-blob-store.js';

function killMidWrite(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/storage/fixtures/fs-put-forever.ts'],
      {
        env: { ...process.env, STORE_DIR: dir },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    p.stdout!.on('data', (d) => {
      if (String(d).includes('writing')) p.kill('SIGKILL');
    });
    p.on('exit', (code, signal) =>
      signal === 'SIGKILL' ? resolve() : reject(new Error(`writer exited ${code}`)),
    );
  });
}

it('a put killed mid-write leaves the old object intact and nothing half-written visible', async () => {
  const kills = Math.max(1, Math.round(5 * Number(process.env.CDP_FAULT_SCALE ?? '1')));
  const dir = await mkdtemp(join(tmpdir(), 'cdp-fs-fault-'));
  try {
    const store = await FsBlobStore.open({ dir });
    const old = Buffer.from('the previous version');
    await store.put('k', old, { contentType: 'text/plain' });
    for (let i = 0; i < kills; i++) {
      await killMidWrite(dir);
      const got = await store.get('k');
      const chunks: Buffer[] = [];
      for await (const c of got.body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks)).toEqual(old);
      expect(got.info.sha256).toBe(createHash('sha256').update(old).digest('hex'));
      const listed = await store.list({});
      expect(listed.objects.map((o) => o.key)).toEqual(['k']);
    }
    // The debris is only in tmp/ (never under objects/): count it, so the test shows it happened.
    const debris = await readdir(join(dir, 'tmp'));
    expect(debris.length).toBe(kills);
    console.log(
      `fs fault: ${kills} writers killed mid-put, old version intact each time, ${debris.length} temp files left in tmp/`,
    );
    // Reopening sweeps stale temp files (age 0 here) and keeps the object.
    const reopened = await FsBlobStore.open({ dir, staleTempMs: 0 });
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect((await reopened.head('k'))?.size).toBe(old.length);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
