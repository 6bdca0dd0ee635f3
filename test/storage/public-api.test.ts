/**
 * The storage module's public surface (issue 17, points 2 and 4): named exports only, no
 * internals, and no engine client loaded by the module's entry, statically or transitively
 * (dynamic imports included: an engine client is loaded through its subpath only).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as storage from '../../src/storage/index.js';

const ENGINE_CLIENTS = ['pg', 'redis', '@nats-io/', 'rabbitmq-client', '@aws-sdk/', '@smithy/'];

/** Module specifiers a file loads at run time (`import type` and `export type` are erased). */
function runtimeImports(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const out: string[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isImportDeclaration(n) && !n.importClause?.isTypeOnly) {
      out.push((n.moduleSpecifier as ts.StringLiteral).text);
    } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && !n.isTypeOnly) {
      out.push((n.moduleSpecifier as ts.StringLiteral).text);
    } else if (
      ts.isCallExpression(n) &&
      n.expression.kind === ts.SyntaxKind.ImportKeyword &&
      n.arguments[0] &&
      ts.isStringLiteral(n.arguments[0])
    ) {
      out.push(n.arguments[0].text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** Every package reachable from `entry` at run time through relative imports. */
function reachable(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [resolve(entry)];
  while (todo.length) {
    const f = todo.pop()!;
    if (files.has(f)) continue;
    files.add(f);
    for (const spec of runtimeImports(f)) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(f), spec.replace(/\.js$/, '.ts')));
      else packages.add(spec);
    }
  }
  return { files, packages };
}

describe('storage public API', () => {
  it('exports by name only, and none of the helpers the adapters share', () => {
    const src = readFileSync('src/storage/index.ts', 'utf8');
    expect(src).not.toMatch(/export \*/);
    for (const internal of [
      'percentDecode',
      'utf8OrThrow',
      'uriEncode',
      'validateKey',
      'pageKeys',
      'MeasuringStream',
      'AwsChunkedDecoder',
      'readPostForm',
      'serveStorage',
      'serveStatic',
      'S3BlobStore',
    ]) {
      expect([internal, internal in storage]).toEqual([internal, false]);
    }
    for (const name of [
      'StorageServer',
      'FsBlobStore',
      'ValetKeyService',
      'presign',
      'StaticSite',
      'StorageError',
    ]) {
      expect([name, name in storage]).toEqual([name, true]);
    }
  });

  it('loads no engine client from the module entry; S3BlobStore comes from the storage/s3 subpath', () => {
    const { packages } = reachable('src/storage/index.ts');
    const clients = [...packages].filter((p) =>
      ENGINE_CLIENTS.some((c) => p === c || p.startsWith(c)),
    );
    expect(clients).toEqual([]);
    expect([...reachable('src/storage/s3.ts').packages]).toContain('@aws-sdk/client-s3');
  });
});
