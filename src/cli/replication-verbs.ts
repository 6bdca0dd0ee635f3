/**
 * `cdp replication check <history-file> --model register|cas-register|kv`: the
 * linearizability checker on a recorded history. Exit 0 linearizable, 1 not, 2 unknown (the
 * timeout ran out), 3 when the file cannot be read or checked. The checker loads only when
 * the command runs.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { errorMessage } from '../core/errors.js';
import type { Operation } from '../replication/history.js';
import type { LinearizabilityResult } from '../replication/linearizability.js';
import type { LinearizabilityModel, ModelName } from '../replication/models.js';
import { positiveInt } from './options.js';

/** Exit codes of `cdp replication check`. */
export const checkExitCodes = {
  linearizable: 0,
  'not-linearizable': 1,
  unknown: 2,
  error: 3,
} as const;

/** How many operations of the linearization before the violation are shown. */
const SHOWN_LINEARIZED = 8;

function line(op: Operation, model: LinearizabilityModel<string>): string {
  const ret = op.ret === Number.POSITIVE_INFINITY ? '∞' : String(op.ret);
  const what = model.describe?.(op) ?? `${op.f} ${JSON.stringify(op.input)}`;
  return `  #${op.id}  process ${String(op.process)}  [${op.call}, ${ret}]  ${what}`;
}

/** The verdict and, for a violation, the shortest prefix with no linearization, as text. */
export function formatCheck(r: LinearizabilityResult, model: LinearizabilityModel<string>): string {
  const summary = `${r.verdict}: ${r.operations} operations in ${r.partitions} partition${r.partitions === 1 ? '' : 's'}, model ${r.model}, ${r.elapsedMs} ms`;
  if (r.verdict === 'unknown')
    return `${summary}\nthe timeout ran out before a verdict; raise --timeout`;
  const v = r.violation;
  if (!v) return summary;
  const shown = v.linearized.slice(-SHOWN_LINEARIZED);
  const out = [
    summary,
    `no linearization${v.partition ? ` for key ${v.partition}` : ''}: the shortest non-linearizable prefix ends when operation #${v.unplaced.id} returns (${v.excerpt.length} operations).`,
    `linearized so far: ${v.linearized.length} operations${shown.length < v.linearized.length ? `, the last ${shown.length}` : ''} (state then: ${v.stateBefore})`,
    ...shown.map((op) => line(op, model)),
    'cannot be placed:',
    line(v.unplaced, model),
  ];
  if (v.pending.length > 0)
    out.push('in flight and not placed:', ...v.pending.map((op) => line(op, model)));
  return out.join('\n');
}

function modelName(v: string): ModelName {
  if (v === 'register' || v === 'cas-register' || v === 'kv') return v;
  throw new InvalidArgumentError('must be register, cas-register or kv');
}

export function registerReplicationCommands(program: Command): void {
  program
    .command('replication')
    .description('tools for replicated data')
    .command('check')
    .description(
      'check a recorded history for linearizability (JSON, Jepsen log or EDN); exit 0 linearizable, 1 not, 2 unknown (timed out), 3 unreadable',
    )
    .argument(
      '<history-file>',
      "the history: this tool's JSON, a Jepsen log (jepsen.util lines) or EDN",
    )
    .requiredOption('--model <model>', 'register | cas-register | kv', modelName)
    .option('--timeout <ms>', 'give up with "unknown" after this long', positiveInt)
    .addOption(
      new Option('--format <format>', 'the file format (default: detected)').choices([
        'json',
        'jepsen-log',
        'edn',
      ]),
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        file: string,
        opts: {
          model: ModelName;
          timeout?: number;
          format?: 'json' | 'jepsen-log' | 'edn';
          json?: boolean;
        },
      ) => {
        try {
          const { readFile } = await import('node:fs/promises');
          const { checkLinearizability, modelByName, parseHistory } = await import(
            '../replication/index.js'
          );
          const text = await readFile(file, 'utf8');
          const { events } = parseHistory(text, opts.format);
          const model = modelByName(opts.model);
          const result = checkLinearizability(events, model, {
            ...(opts.timeout ? { timeoutMs: opts.timeout } : {}),
          });
          process.stdout.write(
            `${opts.json ? JSON.stringify(result, (_k, v) => (v === Number.POSITIVE_INFINITY ? null : v), 2) : formatCheck(result, model)}\n`,
          );
          process.exit(checkExitCodes[result.verdict]);
        } catch (err) {
          process.stderr.write(`error: ${errorMessage(err)}\n`);
          process.exit(checkExitCodes.error);
        }
      },
    );
}
