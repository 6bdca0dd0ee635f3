import type { Logger } from 'pino';
import { errorMessage, ValidationError } from '../../core/errors.js';
import { backoffDelay } from '../../core/retry.js';
import { type Delivery, type HandlerResult, type MessageHandler, retryLater } from '../broker.js';
import { UnknownEventTypeError } from '../envelope.js';
import type { GroupSettings } from './group-settings.js';

/** What an adapter must do with a delivery once the handler is done. */
export type Outcome =
  | { kind: 'ack' }
  | { kind: 'retry'; delayMs: number; counts: boolean; error: string | undefined }
  | { kind: 'dead'; error: string };

/**
 * Run a handler on one delivery and decide the outcome. Invalid input (ValidationError) and
 * unknown event types are dead-lettered at once, never retried; other errors are retried with
 * backoff until `maxDeliveries` attempts have failed, then dead-lettered with the last error.
 */
export async function decide(
  settings: GroupSettings,
  delivery: Delivery,
  handler: MessageHandler,
  logger?: Logger,
): Promise<Outcome> {
  let action: HandlerResult;
  try {
    action = await handler(delivery);
  } catch (err) {
    if (err instanceof ValidationError || err instanceof UnknownEventTypeError) {
      return { kind: 'dead', error: `${err.code}: ${err.message}` };
    }
    logger?.warn(
      { id: delivery.id, attempt: delivery.attempt, err: errorMessage(err) },
      'handler failed',
    );
    action = retryLater(undefined, errorMessage(err));
  }
  if (!action || action.action === 'ack') return { kind: 'ack' };
  if (action.action === 'dead-letter') return { kind: 'dead', error: action.error };
  if (action.action === 'defer')
    return { kind: 'retry', delayMs: action.delayMs, counts: false, error: undefined };
  const error = action.error ?? 'handler asked to retry';
  if (delivery.attempt >= settings.maxDeliveries) {
    return {
      kind: 'dead',
      error: `${error} (gave up after ${delivery.attempt} attempt(s), maxDeliveries ${settings.maxDeliveries})`,
    };
  }
  const delayMs =
    action.delayMs ??
    backoffDelay(delivery.attempt, {
      baseDelayMs: settings.baseDelayMs,
      maxDelayMs: settings.maxDelayMs,
      jitter: 'equal',
    });
  return { kind: 'retry', delayMs, counts: true, error };
}
