import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = resolve(root, 'src');

/**
 * Every import of `entry`, followed through relative files: value, type-only, re-export and
 * dynamic imports alike. Returns the bare package specifiers and the source files reached.
 */
function importGraph(entry: string): { packages: Set<string>; files: Set<string> } {
  const packages = new Set<string>();
  const files = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) {
        packages.add(fileName);
        continue;
      }
      const target = resolve(dirname(file), fileName).replace(/\.js$/, '.ts');
      if (!existsSync(target))
        throw new Error(`${relative(root, file)}: cannot resolve ${fileName}`);
      queue.push(target);
    }
  }
  return { packages, files };
}

const rel = (files: Set<string>) => [...files].map((f) => relative(src, f)).sort();
const bare = (packages: Set<string>) =>
  [...packages]
    .filter((p) => !p.startsWith('node:'))
    .map((p) =>
      p
        .split('/')
        .slice(0, p.startsWith('@') ? 2 : 1)
        .join('/'),
    );

describe('cloud-data-patterns/cache: no engine client behind the entry', () => {
  it('src/cache/index.ts reaches neither `redis` nor src/engines, statically or transitively (types included)', () => {
    const graph = importGraph(resolve(src, 'cache/index.ts'));
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
    const graph = importGraph(resolve(src, 'cache/redis.ts'));
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
