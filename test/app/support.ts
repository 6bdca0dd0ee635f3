import type { PlatformFeature } from '../../src/app/feature.js';
import { type Platform, startPlatform } from '../../src/app/platform.js';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';

export type Role = 'student' | 'instructor' | 'admin' | 'viewer';

export interface Client {
  platform: Platform;
  /** A JSON request; `key` is sent as a bearer token. */
  call(
    method: string,
    path: string,
    options?: {
      key?: string;
      body?: unknown;
      raw?: string | Buffer;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: unknown; text: string; headers: Headers }>;
  /** A fresh API key for a principal. */
  key(role: Role, subject: string): Promise<string>;
  /** A course owned by `instructor` (created as admin). */
  course(
    instructor: string,
    fields?: Record<string, unknown>,
  ): Promise<{ id: string; priceCents: number; topic: string }>;
  close(): Promise<void>;
}

/** The platform on the embedded defaults (PGlite in memory), with helpers to call it as a user. */
export async function startClient(
  env: Record<string, string> = {},
  features?: PlatformFeature[],
): Promise<Client> {
  const platform = await startPlatform({
    config: loadConfig({ CDP_DATA_DIR: 'memory://', CDP_PORT: '0', ...env }),
    logger: silentLogger(),
    ...(features ? { features } : {}),
  });
  const issue = async (role: Role, subject: string) =>
    platform.auth
      ? (await platform.auth.issue({ role, subject })).token
      : `none-${role}-${subject}`;
  const admin = await issue('admin', 'test-admin');
  const call: Client['call'] = async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | Buffer | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${platform.url}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text, headers: res.headers };
  };
  return {
    platform,
    call,
    key: issue,
    course: async (instructor, fields = {}) => {
      const r = await call('POST', '/api/catalog/courses', {
        key: admin,
        body: {
          title: `Course of ${instructor}`,
          topic: 'testing',
          instructor,
          priceCents: 4900,
          ...fields,
        },
      });
      if (r.status !== 201) throw new Error(`could not create a course: ${r.text}`);
      return r.body as { id: string; priceCents: number; topic: string };
    },
    close: () => platform.close(),
  };
}

/** The error code of a JSON error response. */
export const codeOf = (r: { body: unknown }) =>
  (r.body as { error?: { code?: string } } | undefined)?.error?.code;
