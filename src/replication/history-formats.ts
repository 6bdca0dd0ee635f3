/**
 * Reading recorded histories: this module's JSON format, Jepsen logs (`jepsen.util` lines
 * `3	:invoke	:write	4`, as Knossos and Jepsen runs print them) and EDN histories
 * (`{:process 0, :type :invoke, :f :read, :value nil}`, Knossos's test data).
 */
import { z } from 'zod';
import { ValidationError } from '../core/errors.js';
import type { HistoryEvent } from './history.js';
import { type EdnValue, readEdn, readEdnForms } from './internal/edn.js';

export type HistoryFormat = 'json' | 'jepsen-log' | 'edn';

const eventSchema = z.object({
  process: z.union([z.number().int(), z.string()]),
  type: z.enum(['invoke', 'ok', 'fail', 'info']),
  f: z.string().min(1),
  value: z.unknown().optional(),
  key: z.string().optional(),
  time: z.number().optional(),
});

/**
 * The JSON format: `{"history": [event, ...]}` or a bare array of events, each
 * `{"process": 0, "type": "invoke" | "ok" | "fail" | "info", "f": "write", "value": 4}` with
 * optional `"key"` (kv) and `"time"` (else the position orders events).
 */
const jsonHistorySchema = z.union([
  z.array(eventSchema),
  z.object({ history: z.array(eventSchema) }).transform((h) => h.history),
]);

const JEPSEN_LINE = /jepsen\.util\s+-\s+(\S+)\s+:(invoke|ok|fail|info)\s+:?(\S+)(?:\s+(.*?))?\s*$/;

function processOf(v: string): number | string {
  const n = Number(v);
  return Number.isInteger(n) ? n : v.replace(/^:/, '');
}

function parseJepsenLog(text: string): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  for (const line of text.split('\n')) {
    const m = JEPSEN_LINE.exec(line);
    if (!m) continue;
    const process = processOf(m[1] as string);
    if (typeof process === 'string') continue;
    events.push({
      process,
      type: m[2] as HistoryEvent['type'],
      f: m[3] as string,
      value: m[4] === undefined ? null : readEdn(m[4]),
    });
  }
  return events;
}

function ednEvent(v: EdnValue, i: number): HistoryEvent | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new ValidationError(
      `EDN history entry ${i} is not a map; expected {:process …, :type …, :f …, :value …}`,
    );
  const process = v.process;
  if (typeof process !== 'number') return undefined;
  const parsed = eventSchema.safeParse({
    process,
    type: v.type,
    f: v.f,
    value: v.value,
    ...(typeof v.time === 'number' ? { time: v.time } : {}),
  });
  if (!parsed.success)
    throw new ValidationError(
      `EDN history entry ${i}: ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`,
    );
  const { time: _time, ...event } = parsed.data;
  // Jepsen's :time is nanoseconds since the test began; the order of entries is what counts.
  return event as HistoryEvent;
}

function parseEdnHistory(text: string): HistoryEvent[] {
  const forms = readEdnForms(text);
  const first = forms[0];
  const entries = forms.length === 1 && Array.isArray(first) ? first : forms;
  const events: HistoryEvent[] = [];
  entries.forEach((e, i) => {
    const ev = ednEvent(e, i);
    if (ev) events.push(ev);
  });
  return events;
}

function looksLikeJson(text: string): boolean {
  const t = text.trimStart();
  return (
    t.startsWith('{"') || t.startsWith('{ "') || /^\[\s*(\{\s*"|\])/.test(t) || t.startsWith('{\n')
  );
}

/** Which format `text` is in: JSON, a Jepsen log, or EDN. */
export function detectHistoryFormat(text: string): HistoryFormat {
  if (
    JEPSEN_LINE.test(
      text
        .slice(0, 4096)
        .split('\n')
        .find((l) => l.trim()) ?? '',
    )
  )
    return 'jepsen-log';
  if (/jepsen\.util\s+-/.test(text)) return 'jepsen-log';
  return looksLikeJson(text) ? 'json' : 'edn';
}

/** The events of a history in any of the three formats (detected unless given). */
export function parseHistory(
  text: string,
  format: HistoryFormat = detectHistoryFormat(text),
): { readonly format: HistoryFormat; readonly events: HistoryEvent[] } {
  if (format === 'jepsen-log') return { format, events: parseJepsenLog(text) };
  if (format === 'edn') return { format, events: parseEdnHistory(text) };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`the history is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = jsonHistorySchema.safeParse(raw);
  if (!parsed.success)
    throw new ValidationError(
      `the JSON history does not match the format ({"history": [{"process", "type", "f", "value"}]}): ${parsed.error.issues
        .slice(0, 3)
        .map((x) => `${x.path.join('.')}: ${x.message}`)
        .join('; ')}`,
    );
  return { format, events: parsed.data as HistoryEvent[] };
}
