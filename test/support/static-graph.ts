import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The repository's root folder. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Every module a file loads when it is imported: the static `import` and `export … from`
 * declarations, followed through relative files. `import type` and `export type` are erased;
 * `import()` expressions load on demand and are not followed. Under verbatimModuleSyntax an
 * `import { type A }` still loads its module, so it counts. `entry` is relative to the root.
 *
 * Options widen the walk: `dynamic` follows `import()` expressions too (what an entry can ever
 * load at run time); `types` follows type-only imports as well (what it names at all).
 */
export function staticGraph(
  entry: string,
  options: { dynamic?: boolean; types?: boolean } = {},
): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const specifiers = (file: string): string[] => {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
    const out: string[] = [];
    const visit = (n: ts.Node) => {
      if (ts.isImportDeclaration(n) && (options.types || !n.importClause?.isTypeOnly)) {
        out.push((n.moduleSpecifier as ts.StringLiteral).text);
      } else if (
        ts.isExportDeclaration(n) &&
        n.moduleSpecifier &&
        ts.isStringLiteral(n.moduleSpecifier) &&
        (options.types || !n.isTypeOnly)
      ) {
        out.push(n.moduleSpecifier.text);
      } else if (
        options.dynamic &&
        ts.isCallExpression(n) &&
        n.expression.kind === ts.SyntaxKind.ImportKeyword &&
        n.arguments[0] &&
        ts.isStringLiteral(n.arguments[0])
      ) {
        out.push(n.arguments[0].text);
      } else if (
        options.types &&
        ts.isImportTypeNode(n) &&
        ts.isLiteralTypeNode(n.argument) &&
        ts.isStringLiteral(n.argument.literal)
      ) {
        out.push(n.argument.literal.text);
      }
      // Declarations sit at the top level; `import()` and `import('x').T` can be anywhere.
      if (options.dynamic || options.types) ts.forEachChild(n, visit);
    };
    if (options.dynamic || options.types) visit(source);
    else for (const st of source.statements) visit(st);
    return out;
  };
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const name of specifiers(file)) {
      if (name.startsWith('.')) {
        const target = resolve(dirname(file), name.replace(/\.js$/, '.ts'));
        if (!existsSync(target)) throw new Error(`${relative(root, file)}: cannot resolve ${name}`);
        visit(target);
      } else if (!name.startsWith('node:')) packages.add(name);
    }
  };
  visit(resolve(root, entry));
  return { files: [...files].map((f) => relative(root, f)).sort(), packages: [...packages].sort() };
}

const ENGINE_CLIENTS = ['@nats-io/', 'rabbitmq-client', 'pg', 'redis', '@aws-sdk/'];

/** Whether a package name is an engine client (an optional peer dependency of the package). */
export const isEngineClient = (p: string): boolean =>
  ENGINE_CLIENTS.some((c) =>
    c.endsWith('/') ? p.startsWith(c) : p === c || p.startsWith(`${c}/`),
  );
