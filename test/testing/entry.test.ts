import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isEngineClient, root, staticGraph } from '../support/static-graph.js';

describe('cloud-data-patterns/testing', () => {
  it('reaches no engine client and nothing of the project’s test folder', () => {
    const { files, packages } = staticGraph('src/testing/index.ts');
    expect(files).toContain('src/testing/broker-contract.ts');
    expect(packages.filter(isEngineClient)).toEqual([]);
    expect(files.filter((f) => f.startsWith('test/'))).toEqual([]);
    expect(packages).toContain('vitest');
  });

  it('exports by name the contract suites and the helpers they share', async () => {
    expect(Object.keys(await import('../../src/testing/index.js')).sort()).toEqual([
      'brokerContract',
      'createTempDatabase',
      'eventStoreContract',
      'eventually',
      'idempotencyStoreContract',
      'sid',
      'sqlClientContract',
      'startLatencyProxy',
      'uniq',
      'waitReadable',
    ]);
  });

  it('docs/testing.md shows the example that compiles and runs beside this test', () => {
    // The first fenced TypeScript block: the lines between a line "```ts" and the next "```".
    const lines = readFileSync(resolve(root, 'docs/testing.md'), 'utf8').split('\n');
    const start = lines.indexOf('```ts') + 1;
    const end = lines.indexOf('```', start);
    expect(start).toBeGreaterThan(0);
    const block = `${lines.slice(start, end).join('\n')}\n`;
    let example = readFileSync(
      resolve(root, 'test/testing/third-party-adapter.example.test.ts'),
      'utf8',
    );
    for (const entry of ['events', 'messaging', 'testing']) {
      example = example.replace(`'../../src/${entry}/index.js'`, `'cloud-data-patterns/${entry}'`);
    }
    expect(block).toBe(example);
  });
});
