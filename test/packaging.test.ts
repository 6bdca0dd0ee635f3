import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * What `npm pack` ships, and what a project that installs the package with `pg` alone can do.
 *
 * The package is built and packed from a copy of the sources (its node_modules linked), so that
 * the worktree's dist/ (which `npm start` runs, and which may hold files of renamed modules) is
 * neither read nor rewritten.
 */

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { types: string; import: string }>;
  files: string[];
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  devDependencies: Record<string, string>;
};

const ENGINE_CLIENTS = [
  'pg',
  'redis',
  '@nats-io/transport-node',
  '@nats-io/jetstream',
  'rabbitmq-client',
  '@aws-sdk/client-s3',
  'mysql2',
];
/** The dynamic import of the benchmarks by `cdp bench`, which runs from a clone (see the docs). */
const LAZY_BENCH_IMPORT = { from: 'dist/cli/cdp.js', to: 'dist/bench/run.js' };

let work: string;
let tarball: string;
let shipped: Set<string>;

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Static, re-export and dynamic import specifiers of a JavaScript or TypeScript text. */
function importsOf(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cdp-pack-'));
  const copy = join(work, 'package');
  for (const entry of [
    'package.json',
    'README.md',
    'tsconfig.json',
    'tsconfig.build.json',
    'src',
    'docs',
    'web',
  ]) {
    cpSync(join(root, entry), join(copy, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
  await run(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: copy,
    },
  );
  await run(
    process.execPath,
    [
      join(root, 'node_modules/vite/bin/vite.js'),
      'build',
      '--config',
      'web/dashboard/vite.config.ts',
    ],
    { cwd: copy },
  );
  const { stdout } = await run(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', work],
    { cwd: copy },
  );
  const [pack] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  tarball = join(work, pack.filename);
  shipped = new Set(pack.files.map((f) => f.path));
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack: what the package ships', () => {
  it('ships no tests, no benchmarks and no build state', () => {
    const unwanted = [...shipped].filter(
      (p) =>
        p.startsWith('test/') ||
        p.startsWith('bench/') ||
        p.startsWith('dist/bench/') ||
        p.startsWith('src/bench/') ||
        p.endsWith('.tsbuildinfo') ||
        /\.test\.[jt]s$/.test(p),
    );
    expect(unwanted).toEqual([]);
    expect(shipped).toContain('dist/cache/index.js');
    expect(shipped).toContain('src/cache/index.ts');
  });

  it('ships the built dashboard, not its sources', () => {
    expect(shipped).toContain('dist/dashboard/index.html');
    expect([...shipped].some((p) => /^dist\/dashboard\/assets\/index-[\w-]+\.js$/.test(p))).toBe(
      true,
    );
    expect([...shipped].filter((p) => p.startsWith('web/'))).toEqual([]);
  });

  it('every source map points at files the package ships', () => {
    const dangling: string[] = [];
    const copy = join(work, 'package');
    for (const path of shipped) {
      if (!path.endsWith('.map')) continue;
      const map = JSON.parse(readFileSync(join(copy, path), 'utf8')) as {
        sourceRoot?: string;
        sources: string[];
      };
      for (const source of map.sources) {
        const target = posix.normalize(
          posix.join(posix.dirname(path), map.sourceRoot ?? '', source),
        );
        if (!shipped.has(target)) dangling.push(`${path} -> ${target}`);
      }
    }
    expect(dangling).toEqual([]);
  });

  it('the shipped code imports only dependencies, optional peers, Node builtins and shipped files (no benchmark peers)', () => {
    const allowed = new Set([
      ...Object.keys(manifest.dependencies),
      ...Object.keys(manifest.peerDependencies),
    ]);
    const builtins = new Set(builtinModules);
    const bad: string[] = [];
    const copy = join(work, 'package');
    for (const path of shipped) {
      if (!path.startsWith('dist/') || !path.endsWith('.js')) continue;
      for (const specifier of importsOf(readFileSync(join(copy, path), 'utf8'))) {
        if (specifier.startsWith('.')) {
          const target = posix.normalize(posix.join(posix.dirname(path), specifier));
          if (path === LAZY_BENCH_IMPORT.from && target === LAZY_BENCH_IMPORT.to) continue;
          if (!shipped.has(target)) bad.push(`${path}: ${specifier} (not shipped)`);
          continue;
        }
        if (specifier.startsWith('node:') || builtins.has(specifier)) continue;
        if (!allowed.has(packageOf(specifier))) bad.push(`${path}: ${specifier}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('every "exports" subpath points at files the package ships', () => {
    // ./sql/pg, ./messaging/nats and ./messaging/rabbitmq are created on the sql and messaging
    // branches: on the cache branch alone, these three are missing.
    const missing: string[] = [];
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      const targets = typeof target === 'string' ? [target] : [target.types, target.import];
      for (const t of targets) {
        if (!shipped.has(posix.normalize(t))) missing.push(`${subpath}: ${t}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('engine clients are optional peers (and devDependencies here); benchmark peers are devDependencies only', () => {
    for (const client of ENGINE_CLIENTS) {
      expect(manifest.dependencies, client).not.toHaveProperty([client]);
      expect(manifest.peerDependencies, client).toHaveProperty([client]);
      expect(manifest.peerDependenciesMeta[client], client).toEqual({ optional: true });
      expect(manifest.devDependencies[client], client).toBe(manifest.peerDependencies[client]);
    }
    expect(Object.keys(manifest.exports)).not.toContain('./bench');
    for (const peer of ['lru-cache', 'bentocache', 'cache-manager', 'keyv', 'ioredis', 'pg-boss']) {
      expect(manifest.dependencies, peer).not.toHaveProperty([peer]);
      expect(manifest.peerDependencies, peer).not.toHaveProperty([peer]);
    }
  });
});

describe('a project that installs only the package and pg', () => {
  let project: string;

  beforeAll(async () => {
    project = join(work, 'project');
    cpSync(join(root, 'test/fixtures/packaging'), project, { recursive: true });
    await run(
      'npm',
      ['install', tarball, 'pg', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
      { cwd: project, timeout: 540_000 },
    );
  }, 600_000);

  it('has none of the other engine clients installed', () => {
    const installed = ENGINE_CLIENTS.filter((c) => existsSync(join(project, 'node_modules', c)));
    expect(installed).toEqual(['pg']);
  });

  it('reads through the cache (cache-aside) and appends to the event store on PGlite in memory', async () => {
    const { stdout } = await run(process.execPath, ['use-cache-and-events.mjs'], {
      cwd: project,
      timeout: 120_000,
    });
    expect(JSON.parse(stdout)).toEqual({
      first: { id: 'k1', loads: 1 },
      second: { id: 'k1', loads: 1 },
      appended: { version: 2 },
      read: ['Opened', 'Renamed'],
    });
  });

  it('importing cloud-data-patterns/cache/redis fails with MissingDependencyError naming redis', async () => {
    writeFileSync(
      join(project, 'import-redis-tier.mjs'),
      `try {
  await import('cloud-data-patterns/cache/redis');
  console.log(JSON.stringify({ imported: true }));
} catch (err) {
  console.log(JSON.stringify({ name: err.name, code: err.code, packageName: err.packageName, message: err.message }));
}
`,
    );
    const { stdout } = await run(process.execPath, ['import-redis-tier.mjs'], { cwd: project });
    const result = JSON.parse(stdout) as Record<string, string>;
    expect(result).toMatchObject({
      name: 'MissingDependencyError',
      code: 'MISSING_DEPENDENCY',
      packageName: 'redis',
    });
    expect(result.message).toContain('npm install redis');
  });
});
