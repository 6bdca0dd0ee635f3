import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The public API report: for each subpath of package.json "exports", every exported name with
 * its kind and its declaration as a user's TypeScript sees it (the declaration emitter's output,
 * without comments), checked in under api/<subpath>.api.md. A change to a public surface fails
 * here with the diff until the report is regenerated, so that it shows in review:
 *
 *   UPDATE_API_REPORT=1 npx vitest run test/api-report.test.ts
 */

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const reportDir = join(root, 'api');
const REGENERATE = 'UPDATE_API_REPORT=1 npx vitest run test/api-report.test.ts';
const update = process.env.UPDATE_API_REPORT === '1';

const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | { types: string; import: string }>;
};

interface Entry {
  subpath: string;
  /** The source entry file (src/...ts) that dist/...js is built from. */
  source: string;
  report: string;
}

const entries: Entry[] = Object.entries(manifest.exports)
  .filter(([, target]) => typeof target !== 'string')
  .map(([subpath, target]) => {
    const js = (target as { import: string }).import;
    const source = join(root, js.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts'));
    const name = subpath === '.' ? 'root' : subpath.slice(2).replaceAll('/', '-');
    return { subpath, source, report: join(reportDir, `${name}.api.md`) };
  });

const KINDS: [ts.SyntaxKind, string][] = [
  [ts.SyntaxKind.ClassDeclaration, 'class'],
  [ts.SyntaxKind.InterfaceDeclaration, 'interface'],
  [ts.SyntaxKind.TypeAliasDeclaration, 'type'],
  [ts.SyntaxKind.FunctionDeclaration, 'function'],
  [ts.SyntaxKind.VariableStatement, 'const'],
  [ts.SyntaxKind.EnumDeclaration, 'enum'],
  [ts.SyntaxKind.ModuleDeclaration, 'namespace'],
];

/** The names a top-level statement of a declaration file declares. */
function declaredNames(statement: ts.Statement): string[] {
  if (ts.isVariableStatement(statement)) {
    return statement.declarationList.declarations.flatMap((d) =>
      ts.isIdentifier(d.name) ? [d.name.text] : [],
    );
  }
  const name = (statement as { name?: ts.Node }).name;
  return name && ts.isIdentifier(name) ? [name.text] : [];
}

function kindOf(statement: ts.Statement): string {
  if (ts.isVariableStatement(statement)) {
    return statement.declarationList.flags & ts.NodeFlags.Const ? 'const' : 'let';
  }
  return KINDS.find(([k]) => k === statement.kind)?.[1] ?? ts.SyntaxKind[statement.kind];
}

/** Whether `symbol` reaches its declaration through an `export type` / `import type` somewhere. */
function isTypeOnlyExport(checker: ts.TypeChecker, symbol: ts.Symbol): boolean {
  let s: ts.Symbol | undefined = symbol;
  while (s && s.flags & ts.SymbolFlags.Alias) {
    for (const d of s.declarations ?? []) {
      if (
        (ts.isExportSpecifier(d) || ts.isImportSpecifier(d)) &&
        (d.isTypeOnly || d.parent.parent.isTypeOnly)
      ) {
        return true;
      }
    }
    s = checker.getImmediateAliasedSymbol(s);
  }
  return false;
}

function buildReports(present: Entry[]): Map<Entry, string> {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!config) throw new Error('cannot read tsconfig.json');
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: false,
    declaration: true,
    emitDeclarationOnly: true,
    declarationMap: false,
    sourceMap: false,
    incremental: false,
    composite: false,
    outDir: undefined,
    rootDir: undefined,
  };
  const program = ts.createProgram(
    present.map((e) => e.source),
    options,
  );
  const checker = program.getTypeChecker();
  const declarations = new Map<string, ts.SourceFile>();
  program.emit(
    undefined,
    (fileName, text, _bom, _onError, sourceFiles) => {
      const from = sourceFiles?.[0]?.fileName;
      if (from) declarations.set(from, ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest));
    },
    undefined,
    true,
  );
  const printer = ts.createPrinter({ removeComments: true });

  const reports = new Map<Entry, string>();
  for (const entry of present) {
    const file = program.getSourceFile(entry.source)!;
    const moduleSymbol = checker.getSymbolAtLocation(file);
    const exported = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
    const sections: string[] = [];
    for (const symbol of [...exported].sort((a, b) => a.name.localeCompare(b.name))) {
      const target =
        symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      const decl = target.declarations?.[0];
      const from = decl?.getSourceFile().fileName ?? '';
      if (!decl || from.includes(`${sep}node_modules${sep}`) || from.includes('/node_modules/')) {
        const pkg =
          from
            .split(/node_modules[\\/]/)
            .pop()
            ?.split(/[\\/]/) ?? [];
        const name = pkg[0]?.startsWith('@') ? `${pkg[0]}/${pkg[1]}` : (pkg[0] ?? '?');
        const isType = !(target.flags & ts.SymbolFlags.Value) || isTypeOnlyExport(checker, symbol);
        sections.push(
          `## ${symbol.name} (${isType ? 'type' : 'value'} from ${name})\n\n\`\`\`ts\nexport ${isType ? 'type ' : ''}{ ${target.name === symbol.name ? symbol.name : `${target.name} as ${symbol.name}`} } from '${name}';\n\`\`\`\n`,
        );
        continue;
      }
      const dts = declarations.get(from);
      if (!dts) throw new Error(`no declaration output for ${relative(root, from)}`);
      const statements = dts.statements.filter((s) => declaredNames(s).includes(target.name));
      if (statements.length === 0) {
        throw new Error(`${target.name} not found in the declarations of ${relative(root, from)}`);
      }
      const typeOnly = target.flags & ts.SymbolFlags.Value && isTypeOnlyExport(checker, symbol);
      const kinds =
        [...new Set(statements.map(kindOf))].join(', ') + (typeOnly ? ', type only' : '');
      const alias = target.name === symbol.name ? '' : `, declared as ${target.name}`;
      const text = statements
        .map((s) => printer.printNode(ts.EmitHint.Unspecified, s, dts))
        .join('\n');
      sections.push(`## ${symbol.name} (${kinds}${alias})\n\n\`\`\`ts\n${text}\n\`\`\`\n`);
    }
    const title =
      entry.subpath === '.' ? manifest.name : `${manifest.name}/${entry.subpath.slice(2)}`;
    reports.set(
      entry,
      `# ${title}\n\n` +
        `<!-- Generated by test/api-report.test.ts from ${relative(root, entry.source).split(sep).join('/')}: do not edit. Regenerate: ${REGENERATE} -->\n\n` +
        `${exported.length} exported names.\n\n${sections.join('\n')}`,
    );
  }
  return reports;
}

describe('API report (api/*.api.md)', () => {
  const present = entries.filter((e) => existsSync(e.source));
  const reports = buildReports(present);

  it('every "exports" subpath has its source entry file', () => {
    // On the cache branch alone, ./sql/pg, ./messaging/nats and ./messaging/rabbitmq are missing:
    // the sql and messaging branches create them.
    const missing = entries
      .filter((e) => !existsSync(e.source))
      .map((e) => `${e.subpath}: ${relative(root, e.source)}`);
    expect(missing).toEqual([]);
  });

  if (update) {
    mkdirSync(reportDir, { recursive: true });
    const keep = new Set(present.map((e) => e.report));
    for (const name of readdirSync(reportDir)) {
      if (name.endsWith('.api.md') && !keep.has(join(reportDir, name)))
        rmSync(join(reportDir, name));
    }
    for (const [entry, text] of reports) writeFileSync(entry.report, text);
  }

  for (const [entry, text] of reports) {
    it(`${entry.subpath}: the exported surface matches ${relative(root, entry.report)}`, () => {
      const stored = existsSync(entry.report) ? readFileSync(entry.report, 'utf8') : '';
      expect(
        text,
        `the public API of ${entry.subpath} differs from ${relative(root, entry.report)}; if intended, regenerate with: ${REGENERATE}`,
      ).toBe(stored);
    });
  }

  it('has no report for a subpath that is gone', () => {
    const expected = new Set(present.map((e) => relative(reportDir, e.report)));
    const stale = existsSync(reportDir)
      ? readdirSync(reportDir).filter((n) => n.endsWith('.api.md') && !expected.has(n))
      : [];
    expect(stale, `remove them, or regenerate with: ${REGENERATE}`).toEqual([]);
  });
});
