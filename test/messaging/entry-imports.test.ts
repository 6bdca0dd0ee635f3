import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { isEngineClient, root, staticGraph } from '../support/static-graph.js';

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

  it('each entry exports by name what a user needs, nothing the adapters share', async () => {
    // The public surface of the runtime values: a change here is a change of the package's API.
    expect(Object.keys(await import('../../src/messaging/index.js')).sort()).toEqual([
      'BrokerError',
      'ChoreographyService',
      'DeadLetterNotFoundError',
      'DocumentOutboxRelay',
      'DocumentStore',
      'EventTypes',
      'MemoryBroker',
      'Outbox',
      'OutboxRelay',
      'SqlInbox',
      'UnknownEventTypeError',
      'ack',
      'createEnvelope',
      'deadLetter',
      'decodeEnvelope',
      'deferDelivery',
      'dlqList',
      'dlqReplay',
      'encodeEnvelope',
      'eventHandler',
      'inboxHas',
      'listParked',
      'messagingMigrations',
      'openBroker',
      'outboxStats',
      'publishEnvelope',
      'purgeMessageLog',
      'retryLater',
      'traceFlow',
    ]);
    expect(Object.keys(await import('../../src/messaging/nats.js')).sort()).toEqual([
      'NatsBroker',
      'openNatsBroker',
    ]);
    expect(Object.keys(await import('../../src/messaging/rabbitmq.js')).sort()).toEqual([
      'RabbitMqBroker',
      'openRabbitMqBroker',
    ]);
    const index = resolve(root, 'src/messaging/index.ts');
    const source = ts.createSourceFile(index, readFileSync(index, 'utf8'), ts.ScriptTarget.Latest);
    const star = source.statements.filter((st) => ts.isExportDeclaration(st) && !st.exportClause);
    expect(star).toHaveLength(0); // no `export * from`
  });

  it('each entry exports these types, and none of the internal ones', () => {
    // The types of the declared surface, as the compiler sees it (the test above checks the
    // values a running program gets). A change here is a change of the package's API.
    const config = ts.readConfigFile(resolve(root, 'tsconfig.json'), ts.sys.readFile);
    const options = ts.parseJsonConfigFileContent(config.config, ts.sys, root).options;
    const entries = ['index', 'nats', 'rabbitmq'].map((e) =>
      resolve(root, `src/messaging/${e}.ts`),
    );
    const program = ts.createProgram(entries, { ...options, noEmit: true });
    const checker = program.getTypeChecker();
    const [index, nats, rabbit] = entries.map((file) => {
      const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
      return checker
        .getExportsOfModule(module)
        .filter((s) => {
          const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
          return !(target.flags & ts.SymbolFlags.Value);
        })
        .map((s) => s.name)
        .sort();
    });
    expect(index).toEqual([
      'Broker',
      'ChoreographyServiceOptions',
      'DeadLetter',
      'DeadLetterView',
      'Delivery',
      'DocumentEvent',
      'DocumentOutboxOptions',
      'EventHandlerOptions',
      'EventType',
      'HandlerAction',
      'HandlerResult',
      'InboxOptions',
      'InboxResult',
      'MemoryBrokerOptions',
      'MessageEnvelope',
      'MessageHandler',
      'NewMessageEnvelope',
      'OpenBrokerOptions',
      'OutboxMessage',
      'OutboxOptions',
      'OutboxRelayOptions',
      'OutboxStats',
      'OutgoingMessage',
      'ParkedRow',
      'PublishReceipt',
      'Reaction',
      'SubscribeOptions',
      'Subscription',
      'TraceStep',
    ]);
    expect(nats).toEqual(['NatsBrokerOptions']);
    expect(rabbit).toEqual(['RabbitMqBrokerOptions']);
  });

  it('each adapter entry reaches its own engine client and no other', () => {
    const nats = staticGraph('src/messaging/nats.ts').packages.filter(isEngineClient);
    expect(nats).toEqual(['@nats-io/jetstream', '@nats-io/transport-node']);
    const rabbit = staticGraph('src/messaging/rabbitmq.ts').packages.filter(isEngineClient);
    expect(rabbit).toEqual(['rabbitmq-client']);
  });

  /** Run the fixture in a node whose engine clients look uninstalled (tsx compiles the source). */
  async function withoutEngineClients(phase: 'import' | 'open') {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        './test/messaging/fixtures/register-hide-engine-clients.mjs',
        'test/messaging/fixtures/messaging-without-engine-clients.ts',
        phase,
      ],
      { cwd: root, env: { ...process.env, CDP_NATS_URL: '', CDP_AMQP_URL: '' } },
    );
    return {
      lines: stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, string>),
      hidden: stderr.split('\n').filter((l) => l.startsWith('hidden-import ')),
    };
  }

  it('without the engine clients installed, the entry loads and the in-process broker opens', async () => {
    const { lines, hidden } = await withoutEngineClients('import');
    expect(hidden).toEqual([]);
    expect(lines).toEqual([{ kind: 'memory' }]);
  });

  it('without the engine clients installed, openBroker names the package to install', async () => {
    const { lines, hidden } = await withoutEngineClients('open');
    expect(hidden.length).toBeGreaterThan(0);
    expect(lines).toEqual([
      expect.objectContaining({ code: 'MISSING_DEPENDENCY', packageName: '@nats-io/jetstream' }),
      expect.objectContaining({ code: 'MISSING_DEPENDENCY', packageName: 'rabbitmq-client' }),
    ]);
    expect(lines[0]!.message).toContain('npm install @nats-io/jetstream');
    expect(lines[1]!.message).toContain('npm install rabbitmq-client');
  });
});
