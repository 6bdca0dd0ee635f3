import type { DeadLetterView, TraceStep } from '../messaging/index.js';
import { textTable } from './text-table.js';

// How the CLI prints what the messaging module returns (dead letters, flow traces) as text.

/** `cdp dlq list`: a plain-text table of dead letters, the error cut to 80 characters. */
export function formatDeadLetters(list: DeadLetterView[]): string {
  if (list.length === 0) return 'no dead letters';
  const rows = [
    ['id', 'group', 'topic', 'type', 'key', 'attempts', 'dead at', 'error'],
    ...list.map((d) => [
      d.id,
      d.group,
      d.topic,
      d.type,
      d.key,
      String(d.attempts),
      d.deadAt,
      d.error.length > 80 ? `${d.error.slice(0, 77)}...` : d.error,
    ]),
  ];
  return textTable(rows);
}

/** The trace as indented text: `- type (id) handled by a, b`. */
export function formatTrace(steps: TraceStep[]): string {
  return steps
    .map(
      (s) =>
        `${'  '.repeat(s.depth)}- ${s.type} (${s.id}) from ${s.source}` +
        (s.handledBy.length > 0 ? ` handled by ${s.handledBy.join(', ')}` : ''),
    )
    .join('\n');
}
