/**
 * A reader for the part of EDN that Jepsen and Knossos histories use: maps, vectors, lists,
 * sets, keywords, symbols, strings, numbers, nil and booleans, with commas as whitespace and
 * `;` comments. Keywords read as strings without the colon; maps as plain objects keyed by the
 * printed key. Tagged literals (`#jepsen.history.Op{...}`) read as their value.
 */
import { ValidationError } from '../../core/errors.js';

export type EdnValue =
  | null
  | boolean
  | number
  | string
  | EdnValue[]
  | { readonly [key: string]: EdnValue };

const DELIMITERS = new Set(['(', ')', '[', ']', '{', '}', '"', ';']);

class Reader {
  pos = 0;
  constructor(private readonly text: string) {}

  skip(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t[this.pos] as string;
      if (c === ';') {
        while (this.pos < t.length && t[this.pos] !== '\n') this.pos++;
      } else if (c === ',' || c === ' ' || c === '\n' || c === '\r' || c === '\t') {
        this.pos++;
      } else break;
    }
  }

  atEnd(): boolean {
    this.skip();
    return this.pos >= this.text.length;
  }

  fail(what: string): never {
    throw new ValidationError(`EDN: ${what} at character ${this.pos}; check the history file`);
  }

  read(): EdnValue {
    this.skip();
    const t = this.text;
    const c = t[this.pos];
    if (c === undefined) this.fail('unexpected end of input');
    if (c === '[' || c === '(') {
      this.pos++;
      return this.readSeq(c === '[' ? ']' : ')');
    }
    if (c === '#' && t[this.pos + 1] === '{') {
      this.pos += 2;
      return this.readSeq('}');
    }
    if (c === '#') {
      // A tagged literal: skip the tag, read the value.
      this.pos++;
      this.token();
      return this.read();
    }
    if (c === '{') {
      this.pos++;
      const out: Record<string, EdnValue> = {};
      for (;;) {
        this.skip();
        if (t[this.pos] === '}') {
          this.pos++;
          return out;
        }
        const k = this.read();
        const v = this.read();
        out[typeof k === 'string' ? k : JSON.stringify(k)] = v;
      }
    }
    if (c === '"') return this.readString();
    const tok = this.token();
    if (tok === '') this.fail(`unexpected "${c}"`);
    if (tok === 'nil') return null;
    if (tok === 'true') return true;
    if (tok === 'false') return false;
    if (tok.startsWith(':')) return tok.slice(1);
    const n = Number(tok.replace(/[NM]$/, ''));
    return Number.isNaN(n) ? tok : n;
  }

  private readSeq(close: string): EdnValue[] {
    const out: EdnValue[] = [];
    for (;;) {
      this.skip();
      if (this.pos >= this.text.length) this.fail(`missing "${close}"`);
      if (this.text[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(this.read());
    }
  }

  private readString(): string {
    const t = this.text;
    let out = '';
    this.pos++;
    while (this.pos < t.length && t[this.pos] !== '"') {
      if (t[this.pos] === '\\') this.pos++;
      out += t[this.pos];
      this.pos++;
    }
    if (this.pos >= t.length) this.fail('unterminated string');
    this.pos++;
    return out;
  }

  private token(): string {
    const t = this.text;
    const start = this.pos;
    while (this.pos < t.length) {
      const c = t[this.pos] as string;
      if (DELIMITERS.has(c) || c === ',' || c === ' ' || c === '\n' || c === '\r' || c === '\t')
        break;
      this.pos++;
    }
    return t.slice(start, this.pos);
  }
}

/** Every top-level form of `text` (a history is one vector or list, or one map per line). */
export function readEdnForms(text: string): EdnValue[] {
  const r = new Reader(text);
  const forms: EdnValue[] = [];
  while (!r.atEnd()) forms.push(r.read());
  return forms;
}

/** One EDN value (a Jepsen log line's value column). */
export function readEdn(text: string): EdnValue {
  const forms = readEdnForms(text);
  return forms.length === 0 ? null : (forms[0] as EdnValue);
}
