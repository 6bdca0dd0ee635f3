import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  PG_CHECKED_MINOR,
  pgInternalsProblems,
} from '../../../src/engines/sql/internal/pg-protocol.js';

// The PostgreSQL adapter drives pg through its internals (src/engines/sql/internal/pg-protocol.ts).
// These tests fail by name when an upgrade of pg changes them, before any server test runs.

const require = createRequire(import.meta.url);
const installed = (require('pg/package.json') as { version: string }).version;
const manifest = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as Record<string, Record<string, string> | undefined>;

/** major.minor of a version such as 8.23.1. */
const minorOf = (version: string) => version.split('.').slice(0, 2).join('.');

describe("pg's internals, as the prepared pipeline uses them", () => {
  it('the installed pg is the release line the protocol file was checked against', () => {
    expect(
      minorOf(installed),
      `pg ${installed} is installed, but src/engines/sql/internal/pg-protocol.ts was checked against pg ${PG_CHECKED_MINOR}.x: ` +
        "compare pg's lib/utils.js, lib/connection.js and lib/client.js with what that file uses, run the server tests, then update PG_CHECKED_MINOR and pg's range in package.json",
    ).toBe(PG_CHECKED_MINOR);
  });

  it('package.json pins pg to that line (a tilde range), wherever it lists pg', () => {
    const ranges = ['dependencies', 'peerDependencies', 'devDependencies', 'optionalDependencies']
      .map((field) => [field, manifest[field]?.pg] as const)
      .filter(([, range]) => range !== undefined);
    expect(ranges.length, 'package.json lists pg nowhere').toBeGreaterThan(0);
    for (const [field, range] of ranges) {
      expect(
        range!.startsWith(`~${PG_CHECKED_MINOR}.`),
        `package.json ${field}.pg is "${range}": pin it to ~${PG_CHECKED_MINOR}.x, the line whose internals src/engines/sql/internal/pg-protocol.ts uses`,
      ).toBe(true);
    }
  });

  it('pg has every internal the pipeline uses (prepareValue, the Connection writer and its maps, the Client dispatch)', () => {
    const problems = pgInternalsProblems();
    expect(
      problems,
      `pg ${installed} changed internals that src/engines/sql/internal/pg-protocol.ts uses:\n- ${problems.join('\n- ')}`,
    ).toEqual([]);
  });
});
