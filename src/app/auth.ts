import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import type { Migration } from '../engines/sql/migrations.js';
import type { Queryable, SqlClient } from '../engines/sql/sql-client.js';
import { documented, examples, refusal } from './api-docs.js';
import {
  ForbiddenError,
  NotFoundError,
  parseInput,
  singleLine,
  UnauthenticatedError,
} from './http-errors.js';

/**
 * API keys for the platform's mutating and private routes, sent as `Authorization: Bearer <key>`.
 * A key names a principal: a role and a subject (the student id, the instructor's name, an
 * operator). Only a SHA-256 of each key's secret is stored; the secret is shown once, at issue.
 * Keys are 32 random bytes, so a plain hash is enough (no password stretching needed).
 *
 * Roles: `student` (enrolls, buys, reviews, plays what it enrolled in), `instructor` (creates and
 * changes its own courses, uploads their videos), `admin` (everything, issues and revokes keys),
 * `viewer` (private reads only: the dashboard's key).
 */
export const roles = ['student', 'instructor', 'admin', 'viewer'] as const;
export type Role = (typeof roles)[number];

export interface Principal {
  keyId: string;
  role: Role;
  /** Who the key acts as: the student id, the instructor's name, or an operator's name. */
  subject: string;
}

export interface IssuedKey extends Principal {
  /** The whole key, `cdpk_<id>.<secret>`: shown once, never stored. */
  token: string;
}

export const authMigrations: Migration[] = [
  {
    module: 'auth-app',
    version: 1,
    name: 'API keys, stored hashed',
    sql: `CREATE TABLE app_api_keys (
      key_id text PRIMARY KEY,
      secret_sha256 bytea NOT NULL,
      role text NOT NULL CHECK (role IN ('student', 'instructor', 'admin', 'viewer')),
      subject text NOT NULL,
      label text NOT NULL DEFAULT '',
      issued_by text,
      created_at timestamptz NOT NULL,
      revoked_at timestamptz
    );`,
  },
];

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Splits `cdpk_<24 hex>.<43 base64url>`, checking each part decodes back to itself. */
function splitToken(token: string): { keyId: string; secret: string } | undefined {
  const dot = token.indexOf('.');
  if (dot < 0) return undefined;
  const keyId = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!keyId.startsWith('cdpk_') || keyId.length !== 29 || secret.length !== 43) return undefined;
  const hex = keyId.slice(5);
  if (Buffer.from(hex, 'hex').toString('hex') !== hex) return undefined;
  if (Buffer.from(secret, 'base64url').toString('base64url') !== secret) return undefined;
  return { keyId, secret };
}

export class ApiKeys {
  readonly #sql: SqlClient;
  readonly #clock: Clock;

  constructor(sql: SqlClient, clock: Clock) {
    this.#sql = sql;
    this.#clock = clock;
  }

  async issue(
    input: { role: Role; subject: string; label?: string; issuedBy?: string },
    db: Queryable = this.#sql,
  ): Promise<IssuedKey> {
    const keyId = `cdpk_${randomBytes(12).toString('hex')}`;
    const secret = randomBytes(32).toString('base64url');
    await db.query(
      `INSERT INTO app_api_keys (key_id, secret_sha256, role, subject, label, issued_by, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        keyId,
        sha256(secret),
        input.role,
        input.subject,
        input.label ?? '',
        input.issuedBy ?? null,
        new Date(this.#clock.now()),
      ],
    );
    return { keyId, role: input.role, subject: input.subject, token: `${keyId}.${secret}` };
  }

  /** The principal of a live key, or undefined for a malformed, unknown or revoked one. */
  async verify(token: string): Promise<Principal | undefined> {
    const parts = splitToken(token);
    if (!parts) return undefined;
    const { rows } = await this.#sql.query<{
      secret_sha256: Uint8Array;
      role: Role;
      subject: string;
    }>(
      'SELECT secret_sha256, role, subject FROM app_api_keys WHERE key_id = $1 AND revoked_at IS NULL',
      [parts.keyId],
    );
    const row = rows[0];
    if (!row) return undefined;
    const stored = Buffer.from(row.secret_sha256);
    const given = sha256(parts.secret);
    if (stored.length !== given.length || !timingSafeEqual(stored, given)) return undefined;
    return { keyId: parts.keyId, role: row.role, subject: row.subject };
  }

  /** Revoke a key: admins revoke any, others only keys they issued (or their own). */
  async revoke(keyId: string, by: Principal): Promise<void> {
    const { rows } = await this.#sql.query<{ issued_by: string | null; revoked_at: Date | null }>(
      'SELECT issued_by, revoked_at FROM app_api_keys WHERE key_id = $1',
      [keyId],
    );
    const row = rows[0];
    if (!row) throw new NotFoundError(`API key ${keyId}`, 'KEY_NOT_FOUND');
    if (by.role !== 'admin' && row.issued_by !== by.keyId && keyId !== by.keyId)
      throw new ForbiddenError('only an admin or the key that issued it may revoke this key');
    await this.#sql.query(
      'UPDATE app_api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL',
      [keyId, new Date(this.#clock.now())],
    );
  }

  /**
   * Issue `wanted` if no key exists yet (the first start on this database), under a table lock
   * so that instances starting together issue them once. Returns the keys issued, or [].
   */
  async issueIfNone(
    wanted: { role: Role; subject: string; label: string }[],
  ): Promise<IssuedKey[]> {
    return this.#sql.transaction(async (tx) => {
      await tx.exec('LOCK TABLE app_api_keys IN SHARE ROW EXCLUSIVE MODE');
      const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM app_api_keys');
      if (rows[0]!.n > 0) return [];
      const out: IssuedKey[] = [];
      for (const w of wanted) out.push(await this.issue(w, tx));
      return out;
    });
  }

  /**
   * The principal a request acts as, refusing it unless its role is one of `allowed`
   * (admin is always allowed). No header: 401; a bad key: 401; a role not allowed: 403.
   */
  async require(req: FastifyRequest, ...allowed: Role[]): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined)
      throw new UnauthenticatedError(
        'this route needs an API key: send Authorization: Bearer <key> (the demo keys are in the file the platform names at start)',
      );
    const space = header.indexOf(' ');
    const scheme = space < 0 ? header : header.slice(0, space);
    if (scheme.toLowerCase() !== 'bearer' || space < 0)
      throw new UnauthenticatedError('send the API key as Authorization: Bearer <key>');
    const principal = await this.verify(header.slice(space + 1).trim());
    if (!principal)
      throw new UnauthenticatedError(
        'the API key is unknown, malformed or revoked; ask an admin for a new one',
      );
    if (principal.role !== 'admin' && !allowed.includes(principal.role))
      throw new ForbiddenError(
        `a ${principal.role} key may not do this; it needs a key with role ${[...allowed, 'admin'].join(' or ')}`,
      );
    return principal;
  }
}

/**
 * The demo keys, written to `<dataDir>/demo-keys.json` (or a temporary folder when the data is in
 * memory), readable by this user only. Returns the file's path.
 */
export async function writeDemoKeys(
  dataDir: string,
  keys: IssuedKey[],
): Promise<{ file: string; temporaryDir: string | undefined }> {
  let dir = dataDir;
  let temporaryDir: string | undefined;
  if (dataDir === 'memory://') {
    temporaryDir = await mkdtemp(join(tmpdir(), 'cdp-demo-keys-'));
    dir = temporaryDir;
  } else {
    await mkdir(dir, { recursive: true });
  }
  const file = join(dir, 'demo-keys.json');
  const text = JSON.stringify(
    {
      note: 'API keys of the demo data, shown once: send one as Authorization: Bearer <token>. Only their hashes are stored.',
      keys: keys.map((k) => ({ role: k.role, subject: k.subject, keyId: k.keyId, token: k.token })),
    },
    null,
    2,
  );
  await writeFile(file, `${text}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return { file, temporaryDir };
}

const newKey = z.strictObject({
  role: z.enum(roles),
  subject: singleLine(120),
  label: z.string().max(200).optional(),
});
const keyIdParam = z.object({ keyId: z.string().min(1).max(64) });

const principal = z.object({ keyId: z.string(), role: z.enum(roles), subject: z.string() });
const issuedKey = principal.extend({ token: z.string() });
const keyNotFound = refusal(404, 'KEY_NOT_FOUND', `API key ${examples.keyId} was not found`);

/** Who am I; issue a key (admin); revoke a key (admin, the issuing key, or the key itself). */
export function installAuthRoutes(http: FastifyInstance, keys: ApiKeys): void {
  http.get(
    '/api/auth/me',
    documented({
      summary: 'Who this API key acts as',
      description:
        'The key id, role and subject (student id, instructor name, operator) of the key sent.',
      tags: ['auth'],
      roles: ['student', 'instructor', 'viewer'],
      responses: {
        200: {
          description: 'The principal of the key',
          schema: principal,
          example: { keyId: examples.keyId, role: 'student', subject: examples.student },
        },
      },
    }),
    async (req) => {
      const p = await keys.require(req, 'student', 'instructor', 'viewer');
      return { keyId: p.keyId, role: p.role, subject: p.subject };
    },
  );
  http.post(
    '/api/auth/keys',
    documented({
      summary: 'Issue an API key',
      description:
        'Issues a key for a role and subject. The whole key (`token`) is in this response only: the platform keeps a hash of its secret.',
      tags: ['auth'],
      roles: [],
      body: newKey,
      bodyExamples: {
        student: {
          summary: 'A key for a student',
          value: { role: 'student', subject: 'student-42', label: 'mobile app' },
        },
        instructor: {
          summary: 'A key for an instructor (the subject is their name on courses)',
          value: { role: 'instructor', subject: examples.instructor },
        },
      },
      responses: {
        201: {
          description: 'The key, shown once',
          schema: issuedKey,
          example: {
            keyId: examples.keyId,
            role: 'student',
            subject: 'student-42',
            token: examples.token,
          },
        },
      },
    }),
    async (req, reply) => {
      const by = await keys.require(req);
      const input = parseInput(newKey, req.body, 'key');
      const issued = await keys.issue({ ...input, issuedBy: by.keyId });
      return reply.status(201).send(issued);
    },
  );
  http.post(
    '/api/auth/keys/:keyId/revoke',
    documented({
      summary: 'Revoke an API key',
      description:
        'Revokes a key at once: a request with it is refused with 401 from then on. Revoking a revoked key succeeds again.',
      tags: ['auth'],
      roles: ['student', 'instructor', 'viewer'],
      access: 'A key that is not an admin revokes only itself or keys it issued.',
      params: keyIdParam,
      responses: {
        200: {
          description: 'The key is revoked',
          schema: z.object({ revoked: z.string() }),
          example: { revoked: examples.keyId },
        },
      },
      errors: [
        refusal(403, 'FORBIDDEN', 'only an admin or the key that issued it may revoke this key'),
        keyNotFound,
      ],
    }),
    async (req) => {
      const by = await keys.require(req, 'student', 'instructor', 'viewer');
      const { keyId } = parseInput(keyIdParam, req.params, 'path');
      await keys.revoke(keyId, by);
      return { revoked: keyId };
    },
  );
}
