import { ValidationError } from '../../core/errors.js';
import type { OutgoingMessage } from '../broker.js';

/** What the adapters and the outboxes accept as a topic, a group and a message. */
const TOPIC_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const GROUP_RE = /^[A-Za-z0-9_-]{1,100}$/;

export function assertTopic(topic: string): void {
  if (!TOPIC_RE.test(topic)) {
    throw new ValidationError(
      `invalid topic ${JSON.stringify(topic)}: use dot-separated words of letters, digits, _ and -`,
    );
  }
}

export function assertGroup(group: string): void {
  if (!GROUP_RE.test(group)) {
    throw new ValidationError(
      `invalid consumer group ${JSON.stringify(group)}: use 1-100 letters, digits, _ and -`,
    );
  }
}

export function assertMessage(m: OutgoingMessage): void {
  assertTopic(m.topic);
  if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > 200) {
    throw new ValidationError('a message needs an id of 1-200 characters');
  }
  for (const k of Object.keys(m.headers ?? {})) {
    if (k.toLowerCase().startsWith('cdp-') || k.toLowerCase().startsWith('nats-')) {
      throw new ValidationError(`header ${k} is reserved (cdp-* and nats-* are set by the broker)`);
    }
  }
}
