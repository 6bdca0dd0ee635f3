import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The layer of a file under src: core, engines, app, cli, bench, or a module's name. */
function layerOf(file: string): string {
  return relative(src, file).split(sep)[0]!;
}

const RANK: Record<string, number> = { core: 0, engines: 1, app: 3, cli: 4, bench: 4 };
const rank = (layer: string) => RANK[layer] ?? 2; // every other folder is a pattern module

describe('layers: imports point down only', () => {
  const violations: string[] = [];
  for (const file of files(src)) {
    const from = layerOf(file);
    if (!file.slice(src.length + 1).includes(sep)) continue; // src/index.ts re-exports
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/from\s+'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), m[1]!);
      const to = layerOf(target);
      const where = `${relative(src, file)} -> ${relative(src, target)}`;
      if (to === from) continue;
      if (rank(to) > rank(from)) violations.push(`${where} (${from} may not import ${to})`);
      // A module uses another module only through its index.ts.
      if (rank(from) === 2 && rank(to) === 2 && !/\/index\.js$/.test(m[1]!)) {
        violations.push(`${where} (import another module through its index.ts)`);
      }
    }
  }
  it('has no import from a lower layer to a higher one, nor into another module’s internals', () => {
    expect(violations).toEqual([]);
  });
});
