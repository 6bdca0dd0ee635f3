import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { variables } from '../../src/core/config.js';
import { ConfigError, loadConfig } from '../../src/core/index.js';

describe('loadConfig', () => {
  it('uses embedded defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c.database).toEqual({ kind: 'pglite', dataDir: './.cdp-data' });
    expect(c.redisUrl).toBeUndefined();
    expect(c.s3).toBeUndefined();
    expect(c.http).toMatchObject({ host: '127.0.0.1', port: 8080 });
  });

  it('selects engines by URL', () => {
    const c = loadConfig({
      CDP_DATABASE_URL: 'postgres://u:p@db:5432/app',
      CDP_REDIS_URL: 'redis://cache:6379',
      CDP_NATS_URL: 'nats://mq:4222',
      CDP_PORT: '0',
      CDP_S3_ENDPOINT: 'http://127.0.0.1:9000',
    });
    expect(c.database).toEqual({ kind: 'postgres', url: 'postgres://u:p@db:5432/app' });
    expect(c.redisUrl).toBe('redis://cache:6379');
    expect(c.http.port).toBe(0);
    expect(c.s3?.region).toBe('us-east-1');
  });

  it('keeps PGlite in memory with memory://', () => {
    expect(loadConfig({ CDP_DATA_DIR: 'memory://' }).database).toEqual({
      kind: 'pglite',
      dataDir: undefined,
    });
  });

  it.each([
    ['CDP_DATABASE_URL', 'mysql://x', 'postgres://'],
    ['CDP_DATABASE_URL', 'not a url', 'postgres://'],
    ['CDP_REDIS_URL', 'http://x', 'redis://'],
    ['CDP_PORT', '80a', 'whole number'],
    ['CDP_PORT', '70000', 'between 0 and 65535'],
    ['CDP_LOG_LEVEL', 'loud', 'one of'],
  ])('rejects %s=%s naming the variable and the form', (name, value, hint) => {
    try {
      loadConfig({ [name]: value });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(name);
      expect((err as Error).message).toContain(name);
      expect((err as Error).message).toContain(hint);
    }
  });

  it('never echoes a password', () => {
    expect(() => loadConfig({ CDP_REDIS_URL: 'http://u:hunter2@x' })).toThrow(/\*\*\*/);
    expect(() => loadConfig({ CDP_REDIS_URL: 'http://u:hunter2@x' })).not.toThrow(/hunter2/);
  });

  it('rejects an unknown CDP_ variable and suggests the nearest', () => {
    expect(() => loadConfig({ CDP_DATABSE_URL: 'postgres://x' })).toThrow(
      /CDP_DATABSE_URL.*Did you mean CDP_DATABASE_URL/,
    );
  });

  it('needs both S3 keys or neither', () => {
    expect(() => loadConfig({ CDP_S3_ENDPOINT: 'http://x', CDP_S3_ACCESS_KEY_ID: 'a' })).toThrow(
      /set together/,
    );
  });

  it('every variable appears in the README engine table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const name of Object.keys(variables)) expect(readme, name).toContain(`\`${name}\``);
  });
});
