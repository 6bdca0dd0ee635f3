import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCdp } from '../support/cli.js';

const fixture = (path: string) => fileURLToPath(new URL(`./fixtures/${path}`, import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdp-replication-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('cdp replication check', () => {
  it('exits 0 on a linearizable history', async () => {
    const run = await runCdp([
      'replication',
      'check',
      fixture('knossos/good/memstress3-33.edn'),
      '--model',
      'cas-register',
    ]);
    expect([run.code, run.stdout]).toEqual([0, expect.stringMatching(/^linearizable: /)]);
  });

  it('exits 1 and prints the operation that cannot be placed on a violation', async () => {
    const run = await runCdp([
      'replication',
      'check',
      fixture('knossos/bad/rethink-fail-minimal.edn'),
      '--model',
      'cas-register',
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^not-linearizable: 4 operations/);
    expect(run.stdout).toMatch(/cannot be placed:\n {2}#1 {2}process 1 .* read\(\) -> 3/);
  });

  it('reads the JSON format and prints JSON with --json', async () => {
    const file = join(dir, 'h.json');
    await writeFile(
      file,
      JSON.stringify({
        history: [
          { process: 0, type: 'invoke', f: 'put', key: 'k', value: 1 },
          { process: 0, type: 'ok', f: 'put', key: 'k', value: 1 },
          { process: 1, type: 'invoke', f: 'get', key: 'k', value: null },
          { process: 1, type: 'ok', f: 'get', key: 'k', value: 1 },
        ],
      }),
    );
    const run = await runCdp(['replication', 'check', file, '--model', 'kv', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ verdict: 'linearizable', partitions: 1 });
  });

  it('exits 2 (unknown) when the timeout runs out first', async () => {
    const run = await runCdp([
      'replication',
      'check',
      fixture('porcupine/etcd_002.log'),
      '--model',
      'cas-register',
      '--timeout',
      '1',
    ]);
    expect([run.code, run.stdout]).toEqual([2, expect.stringMatching(/^unknown: /)]);
  });

  it('exits 3 with a message when the history cannot be read', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, '{"history": [{"process": 0, "type": "done"}]}');
    const run = await runCdp(['replication', 'check', file, '--model', 'register']);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^error: the JSON history does not match the format/);
  });
});
