import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { marketplaceShardMigrations } from '../../../src/app/enrollment/schema.js';
import { platformMigrations } from '../../../src/app/platform.js';
import { checksum, type Migration } from '../../../src/engines/sql/migrations.js';
import { valetKeyMigrations } from '../../../src/storage/valet-key/valet-key.js';

/**
 * Every shipped migration, pinned: module, version, checksum (`checksum(sql)` of
 * src/engines/sql/migrations.ts, which `migrate` records and compares at start-up). A database
 * that applied a migration refuses to start once that migration's text changed, so a shipped
 * migration never changes: a schema change is a new version.
 *
 * To add a migration: write it as one SQL literal (never derived from another migration's text),
 * run this test, and add the row the failure prints (module, version and checksum) here, in
 * the same commit. A failure on a pinned row means a shipped migration was edited: restore its
 * text and put the change in a new version.
 */
const PINNED: readonly (readonly [module: string, version: number, checksum: string])[] = [
  ['auth-app', 1, '313909cb43c1d3ed'],
  ['catalog', 1, '00277230bb02693e'],
  ['choreographed-saga', 1, '1a78f095f204a2e9'],
  ['enrollment-app', 1, '38942536674c9d2a'],
  ['enrollment-app', 2, '9599a5f452b0b7ca'],
  ['enrollment-app', 3, '883cd68cfb58daf0'],
  ['events', 1, '148fe36a318600e7'],
  ['events', 2, '46180e2d95827fe5'],
  ['events', 3, 'd272e89e92df0d41'],
  ['events', 4, '119ab65c0cb18f5b'],
  ['events', 5, '4304f4affa57e07b'],
  ['idempotency', 1, '773d0922e8764916'],
  ['marketplace-shard', 1, 'e2fd6ee4e7d00576'],
  ['media-app', 1, 'a14b6f10c82864ca'],
  ['messaging', 1, '73d89e15bfc564a7'],
  ['messaging', 2, 'be5273014cdeac7f'],
  ['multi-master', 1, '6fdbb0d5216d3e83'],
  ['payouts-app', 1, '525cf606a7afa373'],
  ['replication-app', 1, '7cd21be8814938ae'],
  ['reviews-app', 1, '235392ad42b63237'],
  ['reviews-app', 2, '1cd0b7a292167764'],
  ['sharding', 1, '6355f711be9a2940'],
  ['sharding', 2, '185d83e5bb3f00e3'],
  ['sharding-app', 1, '1824940e3fa0369c'],
  ['sharding-shard', 1, '943775ab89c16d38'],
  ['sharding-shard', 2, 'dfa8f1637f06f48c'],
  ['storage', 1, 'a7bb701f4329d2c4'],
  ['workflow', 1, '0b6287d8b37d9696'],
  ['two-phase-commit', 1, '635d44898b06593a'],
  ['purchases-app', 1, '965d30b1ac9028e4'],
];

/**
 * Migrations no longer shipped, each with the shipped migration that takes its databases over. A
 * database that applied one keeps its row in `cdp_migrations` as history; no code loads its
 * module, so the runner never compares it again, and the module name is never reused.
 */
const RETIRED: readonly (readonly [
  module: string,
  version: number,
  checksum: string,
  successor: string,
])[] = [
  // The marketplace's review and wallet tables, created by the library before they moved into
  // src/app; reviews-app#1 renames them to app_ tables (docs/decisions/marketplace-out-of-cqrs.md).
  ['cqrs', 1, '49c510e0f9aa2ac0', 'reviews-app#1'],
];

/**
 * Every migration the code ships: the platform's, its shards' (marketplace-shard), the valet
 * key's (the platform composes it) and
 * every list a public entry exports (an export named `...Migrations`), found through
 * package.json's "exports", so a new module's migrations are pinned without editing this file.
 */
async function shipped(): Promise<Map<string, Migration>> {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  const all: Migration[] = [
    ...platformMigrations(),
    ...marketplaceShardMigrations,
    ...valetKeyMigrations,
  ];
  for (const [subpath, target] of Object.entries(pkg.exports as Record<string, unknown>)) {
    if (subpath === './testing' || typeof target !== 'object' || target === null) continue;
    const dist = (target as { import: string }).import;
    const source = dist.replace(/^\.\/dist\//, '../../../src/').replace(/\.js$/, '.ts');
    const entry: Record<string, unknown> = await import(new URL(source, import.meta.url).href);
    for (const [name, value] of Object.entries(entry)) {
      if (name.endsWith('Migrations') && Array.isArray(value)) all.push(...(value as Migration[]));
    }
  }
  const byKey = new Map<string, Migration>();
  for (const m of all) {
    const key = `${m.module}#${m.version}`;
    const seen = byKey.get(key);
    if (seen && seen.sql !== m.sql)
      throw new Error(`two different migrations claim ${key} ("${seen.name}", "${m.name}")`);
    byKey.set(key, m);
  }
  return byKey;
}

const migrations = await shipped();

describe('shipped migrations are frozen', () => {
  it.each(PINNED.map(([module, version, sum]) => ({ module, version, sum })))(
    'migration $module#$version keeps its text (checksum $sum)',
    ({ module, version, sum }) => {
      const m = migrations.get(`${module}#${version}`);
      expect(
        m,
        `migration ${module}#${version} is pinned but no longer shipped: a database that applied it needs it`,
      ).toBeDefined();
      expect(
        checksum(m!.sql),
        `migration ${module}#${version} ("${m!.name}") changed after it shipped: databases that applied it refuse to start. Restore its text and add the change as a new version`,
      ).toBe(sum);
    },
  );

  it.each(RETIRED.map(([module, version, , successor]) => ({ module, version, successor })))(
    'retired migration $module#$version is no longer shipped, and its successor $successor is',
    ({ module, version, successor }) => {
      const shippedModules = new Set([...migrations.values()].map((m) => m.module));
      expect(shippedModules.has(module), `module ${module} is retired: never reuse its name`).toBe(
        false,
      );
      expect(
        migrations.has(successor),
        `${successor} takes over ${module}#${version}'s databases`,
      ).toBe(true);
    },
  );

  it('every shipped migration is pinned here', () => {
    const pinned = new Set(PINNED.map(([module, version]) => `${module}#${version}`));
    const unpinned = [...migrations.values()]
      .filter((m) => !pinned.has(`${m.module}#${m.version}`))
      .map((m) => `['${m.module}', ${m.version}, '${checksum(m.sql)}'],`);
    expect(unpinned, `add these rows to PINNED in ${import.meta.url}`).toEqual([]);
  });
});
