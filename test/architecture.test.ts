import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
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

/**
 * Modules own no domain: a library module (everything under src/ but app, cli and bench) never
 * names the marketplace in its code, that is in identifiers, string and template literals (SQL,
 * messages, table names) and regular expressions. Comments are not checked: a familiar example
 * there ("e.g. `course.enrolled`") documents a parameter without putting the domain in the
 * library.
 */
const DOMAIN_WORDS = ['course', 'review', 'wallet', 'enrol', 'student', 'instructor', 'purchase'];

/** The domain words found in a file's code (not its comments), with where. */
function domainWordsInCode(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    let word: string | undefined;
    if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) word = node.text;
    else if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) word = node.text;
    else if (ts.isRegularExpressionLiteral(node)) word = node.text;
    if (word !== undefined) {
      const lower = word.toLowerCase();
      const hit = DOMAIN_WORDS.find((w) => lower.includes(w));
      if (hit) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
        found.push(
          `${fileName}:${line + 1} names "${hit}" in ${JSON.stringify(word.slice(0, 60))}`,
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('modules own no domain', () => {
  it('finds the domain in identifiers, strings, templates and SQL, and not in comments', () => {
    const sample = [
      '// e.g. `course.enrolled`',
      '/** A wallet, say. */',
      'export const courseTable = 1;',
      "const sql = 'SELECT * FROM cdp_reviews';",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a sample file
      'const t = `INSERT INTO ${x}_purchases`;',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a sample file
      'throw new Error(`no Student ${id}`);',
    ].join('\n');
    expect(domainWordsInCode('sample.ts', sample).map((f) => f.split(' ')[2])).toEqual([
      '"course"',
      '"review"',
      '"purchase"',
      '"student"',
    ]);
  });

  it('no library module under src/ (all but app, cli and bench) names the marketplace in its code', () => {
    const library = files(src).filter((f) => !['app', 'cli', 'bench'].includes(layerOf(f)));
    expect(library.length).toBeGreaterThan(20);
    const found = library.flatMap((f) =>
      domainWordsInCode(relative(src, f), readFileSync(f, 'utf8')),
    );
    expect(found).toEqual([]);
  });
});
