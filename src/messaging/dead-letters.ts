import { CdpError } from '../core/errors.js';
import type { Broker, DeadLetter } from './broker.js';
import { decodeEnvelope } from './envelope.js';

/** One dead letter as `cdp dlq list` shows it. */
export interface DeadLetterView {
  id: string;
  group: string;
  topic: string;
  /** CloudEvents type when the body is an envelope, else ''. */
  type: string;
  key: string;
  attempts: number;
  deadAt: string;
  error: string;
}

export class DeadLetterNotFoundError extends CdpError {
  constructor(id: string) {
    super(
      'MESSAGING_DEAD_LETTER_NOT_FOUND',
      `no dead letter with id ${JSON.stringify(id)}; run \`cdp dlq list\` to see the ids`,
    );
  }
}

function view(d: DeadLetter): DeadLetterView {
  let type = '';
  try {
    type = decodeEnvelope(d.body).type;
  } catch {
    type = '';
  }
  return {
    id: d.id,
    group: d.group,
    topic: d.topic,
    type,
    key: d.key ?? '',
    attempts: d.attempts,
    deadAt: d.deadAt,
    error: d.error,
  };
}

/** `cdp dlq list [--group g] [--limit n]`: dead letters, oldest first. */
export async function dlqList(
  broker: Broker,
  options: { limit?: number; group?: string } = {},
): Promise<DeadLetterView[]> {
  return (await broker.listDeadLetters(options)).map(view);
}

/** `cdp dlq replay <id>`: publish again to its group; throws when there is no such id. */
export async function dlqReplay(
  broker: Broker,
  id: string,
): Promise<{ id: string; replayed: number }> {
  const replayed = await broker.replayDeadLetter(id);
  if (replayed === 0) throw new DeadLetterNotFoundError(id);
  return { id, replayed };
}
