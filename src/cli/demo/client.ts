import { errorMessage } from '../../core/errors.js';

/** One HTTP exchange of the tour, as the narration shows it. */
export interface Exchange {
  method: string;
  path: string;
  /** The API key's role the request was sent with ('no key' when none). */
  as: string;
  status: number;
}

export interface Answer {
  status: number;
  headers: Headers;
  /** The JSON body, the text of a text or XML body, or the bytes of any other. */
  body: unknown;
}

/** What the step expected and what it got instead. */
export class StepFailure extends Error {
  readonly expected: string;
  readonly got: string;
  constructor(expected: string, got: string) {
    super(`expected ${expected}; got ${got}`);
    this.expected = expected;
    this.got = got;
  }
}

/** Stop the step unless `ok`: say what was expected and what came instead. */
export function check(ok: boolean, expected: string, got: () => string): asserts ok {
  if (!ok) throw new StepFailure(expected, got());
}

/** An error body's `code: message`, or the status alone. */
export function describe(a: Answer): string {
  const e = (a.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  return e ? `${a.status} ${e.code ?? ''}: ${e.message ?? ''}` : `${a.status}`;
}

export interface Key {
  role: string;
  subject: string;
  token: string;
}

/**
 * The tour's HTTP client: every call goes to the platform over fetch (so the tour runs the same
 * against a platform on real engines), and is recorded for the narration of the current step.
 */
export class TourClient {
  readonly base: string;
  #log: Exchange[] = [];

  constructor(base: string) {
    this.base = base;
  }

  /** The exchanges since the last call, oldest first. */
  take(): Exchange[] {
    const out = this.#log;
    this.#log = [];
    return out;
  }

  async call(
    method: string,
    path: string,
    options: { key?: Key; json?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const headers = new Headers(options.headers);
    if (options.key) headers.set('authorization', `Bearer ${options.key.token}`);
    let body: string | undefined;
    if (options.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(options.json);
    }
    const answer = await this.fetch(`${this.base}${path}`, { method, headers, body });
    this.#log.push({
      method,
      path,
      as: options.key ? `${options.key.role} ${options.key.subject}` : 'no key',
      status: answer.status,
    });
    return answer;
  }

  /** A request to any URL (the storage server's presigned ones), recorded by its path. */
  async direct(url: string, init: RequestInit = {}, as = 'no key'): Promise<Answer> {
    const answer = await this.fetch(url, init);
    const u = new URL(url);
    this.#log.push({
      method: init.method ?? 'GET',
      path: `${u.host}${u.pathname}${u.search ? '?…' : ''}`,
      as,
      status: answer.status,
    });
    return answer;
  }

  async fetch(url: string, init: RequestInit): Promise<Answer> {
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (err) {
      throw new StepFailure(
        `an answer from ${new URL(url).origin}`,
        `no answer (${errorMessage((err as { cause?: unknown }).cause ?? err)})`,
      );
    }
    const type = res.headers.get('content-type') ?? '';
    const bytes = Buffer.from(await res.arrayBuffer());
    // Text and JSON as text; anything else (a video) as its bytes.
    if (!type.includes('json') && !type.startsWith('text/') && !type.includes('xml'))
      return { status: res.status, headers: res.headers, body: bytes };
    const text = bytes.toString('utf8');
    let body: unknown = text;
    if (type.includes('json') && text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    return { status: res.status, headers: res.headers, body };
  }
}
