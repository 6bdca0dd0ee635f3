import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { root, staticGraph } from '../../support/static-graph.js';

const ENGINE_CLIENTS = ['pg', 'redis', 'mysql2', 'rabbitmq-client', '@nats-io/', '@aws-sdk/'];
const isEngineClient = (p: string) =>
  ENGINE_CLIENTS.some((c) =>
    c.endsWith('/') ? p.startsWith(c) : p === c || p.startsWith(`${c}/`),
  );

describe('cloud-data-patterns/workflow: engine clients stay behind their entry', () => {
  it('the main entry reaches no engine client, even through types', () => {
    // import() is left out: the choreographed saga uses the messaging module's entry, whose
    // openBroker loads the NATS and RabbitMQ adapters on demand through importOptional (the
    // messaging entry's own test covers that path).
    const graph = staticGraph('src/workflow/index.ts', { types: true });
    expect(graph.packages.filter(isEngineClient)).toEqual([]);
    expect(graph.files.filter((f) => /^src\/engines\/(nats|amqp|redis)\//.test(f))).toEqual([]);
  });

  it('the MariaDB entry reaches mysql2 and no other engine client', () => {
    const graph = staticGraph('src/workflow/mariadb.ts', { dynamic: true, types: true });
    expect([...new Set(graph.packages.filter(isEngineClient))].sort()).toEqual(['mysql2/promise']);
  });

  it('without mysql2 the main entry loads and the MariaDB entry fails naming the package', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        './test/workflow/two-phase-commit/fixtures/register-hide-mysql2.mjs',
        'test/workflow/two-phase-commit/fixtures/import-workflow-entries.ts',
      ],
      { cwd: root },
    );
    const [main, mariadb] = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(main).toEqual({ main: 'function' });
    expect(mariadb).toMatchObject({
      name: 'MissingDependencyError',
      code: 'MISSING_DEPENDENCY',
      packageName: 'mysql2',
    });
    expect(mariadb!.message).toContain('npm install mysql2');
  });
});
