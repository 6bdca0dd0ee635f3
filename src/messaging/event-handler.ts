import type { Broker, Delivery, HandlerResult, MessageHandler, PublishReceipt } from './broker.js';
import { ack, deadLetter } from './broker.js';
import {
  decodeEnvelope,
  type EventTypes,
  encodeEnvelope,
  type MessageEnvelope,
  UnknownEventTypeError,
} from './envelope.js';

export interface EventHandlerOptions {
  /**
   * What to do with an envelope whose type has no registered schema: 'dead-letter' (default:
   * to the dead-letter destination at once, with an UnknownEventTypeError naming the known
   * types) or 'ignore' (ack and skip, for consumers that read a shared topic selectively).
   * Publishers reject unknown types before sending when given `types` (publishEnvelope).
   */
  unknownTypes?: 'dead-letter' | 'ignore';
}

/**
 * Validate at the edge, then call `fn` with a typed envelope. An envelope that is not
 * CloudEvents 1.0, or whose `data` fails its schema, goes to the dead-letter destination with
 * the validation error on its first attempt (it would fail the same way forever).
 */
export function eventHandler(
  types: EventTypes,
  fn: (env: MessageEnvelope, delivery: Delivery) => Promise<HandlerResult>,
  options: EventHandlerOptions = {},
): MessageHandler {
  const unknown = options.unknownTypes ?? 'dead-letter';
  return async (delivery) => {
    const env = decodeEnvelope(delivery.body); // ValidationError -> dead letter
    if (!types.has(env.type)) {
      if (unknown === 'ignore') return ack();
      const err = new UnknownEventTypeError(env.type, types.types);
      return deadLetter(`${err.code}: ${err.message}`);
    }
    return fn(types.parse(env), delivery);
  };
}

/**
 * Publish an envelope on a topic, with its id as message id and its partition key as key.
 * With `types`, the envelope is validated first: an unknown type or a payload failing its
 * schema is rejected with UnknownEventTypeError / ValidationError and nothing is sent.
 */
export async function publishEnvelope(
  broker: Broker,
  topic: string,
  env: MessageEnvelope,
  options: { headers?: Record<string, string>; types?: EventTypes } = {},
): Promise<PublishReceipt> {
  if (options.types) options.types.parse(env);
  const headers = options.headers;
  return broker.publish({
    topic,
    id: env.id,
    key: env.partitionkey,
    headers,
    body: encodeEnvelope(env),
  });
}
