import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/cli/doctor.js';
import { loadConfig } from '../../src/core/config.js';

describe('cdp doctor on the embedded defaults', () => {
  it('reports the media storage folder the platform uses, and creates no folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cdp-doctor-blobs-'));
    try {
      const data = join(dir, 'data');
      const checks = await runDoctor(loadConfig({ CDP_DATA_DIR: data }));
      expect(checks.map((c) => c.role)).not.toContain('blobs');
      expect(checks.some((c) => c.target.endsWith('blobs'))).toBe(false);
      const media = checks.find((c) => c.role === 'media storage');
      expect(media).toMatchObject({ ok: true, target: join(data, 'storage') });
      expect(existsSync(join(data, 'blobs'))).toBe(false);
      expect(existsSync(data)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the README no longer says blobs live under CDP_DATA_DIR/blobs', async () => {
    const readme = await readFile(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    expect(readme).not.toContain('CDP_DATA_DIR/blobs');
  });
});
