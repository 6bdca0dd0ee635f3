import { readFileSync } from 'node:fs';
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
 */
export function staticGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
    for (const st of source.statements) {
      let spec: ts.Expression | undefined;
      if (ts.isImportDeclaration(st) && !st.importClause?.isTypeOnly) spec = st.moduleSpecifier;
      if (ts.isExportDeclaration(st) && !st.isTypeOnly) spec = st.moduleSpecifier;
      if (!spec || !ts.isStringLiteral(spec)) continue;
      const name = spec.text;
      if (name.startsWith('.')) visit(resolve(dirname(file), name.replace(/\.js$/, '.ts')));
      else if (!name.startsWith('node:')) packages.add(name);
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
