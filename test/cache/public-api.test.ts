import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { staticGraph } from '../support/static-graph.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = resolve(root, 'src');

/** Every import of an entry: value, type-only, re-export and dynamic imports alike. */
const importGraph = (entry: string) => staticGraph(entry, { dynamic: true, types: true });
const rel = (files: string[]) => files.map((f) => relative('src', f)).sort();
const bare = (packages: string[]) =>
  packages
    .filter((p) => !p.startsWith('node:'))
    .map((p) =>
      p
        .split('/')
        .slice(0, p.startsWith('@') ? 2 : 1)
        .join('/'),
    );

describe('cloud-data-patterns/cache: no engine client behind the entry', () => {
  it('src/cache/index.ts reaches neither `redis` nor src/engines, statically or transitively (types included)', () => {
    const graph = importGraph('src/cache/index.ts');
    expect(rel(graph.files).filter((f) => f.startsWith('engines/'))).toEqual([]);
    expect(bare(graph.packages)).not.toContain('redis');
    for (const client of [
      'pg',
      '@nats-io/transport-node',
      '@nats-io/jetstream',
      'rabbitmq-client',
      '@aws-sdk/client-s3',
    ]) {
      expect(bare(graph.packages)).not.toContain(client);
    }
  });

  it('the Redis tier is the subpath entry src/cache/redis.ts, which names `redis`', () => {
    const graph = importGraph('src/cache/redis.ts');
    expect(bare(graph.packages)).toContain('redis');
    expect(rel(graph.files)).toEqual(
      expect.arrayContaining([
        'cache/redis-cache-store.ts',
        'cache/redis-invalidation-bus.ts',
        'cache/redis-stampede-lock.ts',
      ]),
    );
  });
});

describe('cloud-data-patterns/cache: exports by name, internals stay inside', () => {
  for (const entry of ['cache/index.ts', 'cache/redis.ts', 'core/index.ts']) {
    it(`src/${entry} has no \`export *\``, () => {
      const text = readFileSync(resolve(src, entry), 'utf8');
      const file = ts.createSourceFile(entry, text, ts.ScriptTarget.Latest);
      const stars = file.statements.filter(
        (s) => ts.isExportDeclaration(s) && s.exportClause === undefined,
      );
      expect(stars.map((s) => s.getText(file))).toEqual([]);
    });
  }

  it('the cache entry exports the API and none of the internals', async () => {
    const cache = await import('../../src/cache/index.js');
    const names = Object.keys(cache);
    expect(names).toEqual(
      expect.arrayContaining([
        'Cache',
        'CacheLoadError',
        'LocalStore',
        'MemoryCacheStore',
        'MemoryBusHub',
        'WriteBehind',
      ]),
    );
    for (const internal of [
      'mix32',
      'hashKey',
      'checkTtl',
      'FrequencySketch',
      'Int32Index',
      'TimerWheel',
      'linkTail',
    ]) {
      expect(names).not.toContain(internal);
    }
    for (const redis of ['RedisCacheStore', 'RedisInvalidationBus', 'RedisStampedeLock']) {
      expect(names).not.toContain(redis);
    }
  });

  it('the Redis entry exports the three Redis adapters', async () => {
    const redis = await import('../../src/cache/redis.js');
    expect(Object.keys(redis).sort()).toEqual([
      'RedisCacheStore',
      'RedisInvalidationBus',
      'RedisStampedeLock',
    ]);
  });
});
