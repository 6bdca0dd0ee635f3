import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Every module a file loads when it is imported: the static `import` and `export … from`
 * declarations, followed through relative files. `import type` and `export type` are erased;
 * `import()` expressions load on demand and are not followed. Under verbatimModuleSyntax an
 * `import { type A }` still loads its module, so it counts.
 */
function staticGraph(entry: string): { files: string[]; packages: string[] } {
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
const isEngineClient = (p: string) =>
  ENGINE_CLIENTS.some((c) =>
    c.endsWith('/') ? p.startsWith(c) : p === c || p.startsWith(`${c}/`),
  );

describe('messaging entry points', () => {
  it('src/messaging/index.ts reaches no engine client, nor the engines that import one', () => {
    const { files, packages } = staticGraph('src/messaging/index.ts');
    expect(files).toContain('src/messaging/open-broker.ts');
    expect(packages.filter(isEngineClient)).toEqual([]);
    expect(files.filter((f) => /^src\/engines\/(nats|amqp)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /^src\/messaging\/(nats|rabbitmq)(-broker)?\.ts$/.test(f))).toEqual(
      [],
    );
  });

  it('each adapter entry reaches its own engine client and no other', () => {
    const nats = staticGraph('src/messaging/nats.ts').packages.filter(isEngineClient);
    expect(nats).toEqual(['@nats-io/jetstream', '@nats-io/transport-node']);
    const rabbit = staticGraph('src/messaging/rabbitmq.ts').packages.filter(isEngineClient);
    expect(rabbit).toEqual(['rabbitmq-client']);
  });
});
