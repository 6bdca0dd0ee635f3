import { z } from 'zod';
import { ConfigError } from './errors.js';

/**
 * Every variable the toolkit reads, in one table. The README's engine table is checked
 * against this list by a test, so documentation and code cannot drift apart.
 */
interface VariableSpec<T> {
  name: string;
  /** What it selects, and what runs when it is unset. */
  description: string;
  /** The expected form, quoted in error messages. */
  form: string;
  schema: z.ZodType<T>;
}

function urlWithProtocols(protocols: string[]) {
  return z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );
}

const port = z
  .string()
  .regex(/^\d+$/, 'must be a whole number')
  .transform(Number)
  .refine((n) => n >= 0 && n <= 65535, 'must be between 0 and 65535');

/** A whole number of `unit`s from `min` to `max`. */
function wholeNumber(min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);
}

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const variables = {
  CDP_DATABASE_URL: {
    name: 'CDP_DATABASE_URL',
    description: 'PostgreSQL server for every SQL role. Unset: embedded PGlite in CDP_DATA_DIR.',
    form: 'postgres://user:password@host:5432/database',
    schema: urlWithProtocols(['postgres:', 'postgresql:']),
  },
  CDP_DATA_DIR: {
    name: 'CDP_DATA_DIR',
    description:
      'Folder for embedded data (PGlite, objects of the media storage server under `storage/`, demo keys). `memory://` keeps them in memory or a temporary folder. Default `./.cdp-data`.',
    form: 'a folder path, or memory://',
    schema: z.string().min(1, 'must not be empty'),
  },
  CDP_REDIS_URL: {
    name: 'CDP_REDIS_URL',
    description:
      'Redis for the distributed cache tier and its invalidation bus. Unset: in-process only.',
    form: 'redis://host:6379 or rediss://host:6380',
    schema: urlWithProtocols(['redis:', 'rediss:']),
  },
  CDP_NATS_URL: {
    name: 'CDP_NATS_URL',
    description:
      'NATS JetStream as the message broker. Unset: in-process broker (unless CDP_AMQP_URL).',
    form: 'nats://host:4222',
    schema: urlWithProtocols(['nats:', 'tls:']),
  },
  CDP_AMQP_URL: {
    name: 'CDP_AMQP_URL',
    description: 'RabbitMQ as the message broker. Unset: in-process broker (unless CDP_NATS_URL).',
    form: 'amqp://user:password@host:5672',
    schema: urlWithProtocols(['amqp:', 'amqps:']),
  },
  CDP_MARIADB_URL: {
    name: 'CDP_MARIADB_URL',
    description:
      'MariaDB (10.5 or later) as a participant of two-phase commit (XA transactions); its tests and the 2pc benchmark run when set. Unset: none.',
    form: 'a URL like mysql://user:password@host:3306/database',
    schema: urlWithProtocols(['mysql:', 'mariadb:']),
  },
  CDP_PG_PREPARED_URL: {
    name: 'CDP_PG_PREPARED_URL',
    description:
      'A PostgreSQL server with max_prepared_transactions > 0 (tooling/pg-prepared-cluster.sh starts one on port 5433) for the two-phase commit tests and the 2pc benchmark. Unset: they are skipped.',
    form: 'a URL like postgres://user:pass@host:5433/db',
    schema: urlWithProtocols(['postgres:', 'postgresql:']),
  },
  CDP_S3_ENDPOINT: {
    name: 'CDP_S3_ENDPOINT',
    description:
      'S3-compatible object storage for `cdp static --bucket`. Unset: no S3 endpoint (use --store <folder>).',
    form: 'http://host:9000 or https://s3.region.amazonaws.com',
    schema: urlWithProtocols(['http:', 'https:']),
  },
  CDP_S3_REGION: {
    name: 'CDP_S3_REGION',
    description: 'Region used to sign S3 requests. Default `us-east-1`.',
    form: 'a region name such as us-east-1',
    schema: z.string().regex(/^[a-z0-9-]+$/, 'must be lower-case letters, digits and dashes'),
  },
  CDP_S3_BUCKET: {
    name: 'CDP_S3_BUCKET',
    description: 'Bucket for the platform’s blobs. Default `cdp`.',
    form: 'a bucket name (3-63 lower-case letters, digits, dots, dashes)',
    schema: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid bucket name'),
  },
  CDP_S3_ACCESS_KEY_ID: {
    name: 'CDP_S3_ACCESS_KEY_ID',
    description: 'Access key for CDP_S3_ENDPOINT.',
    form: 'an access key id',
    schema: z.string().min(1),
  },
  CDP_S3_SECRET_ACCESS_KEY: {
    name: 'CDP_S3_SECRET_ACCESS_KEY',
    description: 'Secret key for CDP_S3_ENDPOINT.',
    form: 'a secret access key',
    schema: z.string().min(1),
  },
  CDP_STORAGE_ACCESS_KEY_ID: {
    name: 'CDP_STORAGE_ACCESS_KEY_ID',
    description:
      'Access key of the built-in S3-compatible storage server (`cdp storage serve`) and of the valet keys it signs.',
    form: 'an access key id (letters and digits)',
    schema: z.string().regex(/^[A-Za-z0-9]{3,128}$/, 'must be 3-128 letters or digits'),
  },
  CDP_STORAGE_SECRET_ACCESS_KEY: {
    name: 'CDP_STORAGE_SECRET_ACCESS_KEY',
    description: 'Secret key of the built-in storage server (set with CDP_STORAGE_ACCESS_KEY_ID).',
    form: 'a secret of at least 16 characters',
    schema: z.string().min(16, 'must be at least 16 characters'),
  },
  CDP_STORAGE_REGION: {
    name: 'CDP_STORAGE_REGION',
    description: 'Region the built-in storage server signs and verifies with. Default `us-east-1`.',
    form: 'a region name such as us-east-1',
    schema: z.string().regex(/^[a-z0-9-]+$/, 'must be lower-case letters, digits and dashes'),
  },
  CDP_HOST: {
    name: 'CDP_HOST',
    description: 'Address the reference platform listens on. Default `127.0.0.1`.',
    form: 'an IP address or host name',
    schema: z.string().min(1),
  },
  CDP_PORT: {
    name: 'CDP_PORT',
    description: 'Port of the reference platform. Default `8080`; `0` picks a free port.',
    form: 'a whole number from 0 to 65535',
    schema: port,
  },
  CDP_HTTP_HEADERS_TIMEOUT_MS: {
    name: 'CDP_HTTP_HEADERS_TIMEOUT_MS',
    description:
      'Time a client has to send the request headers before the platform answers 408 and closes. Default `10000`.',
    form: 'milliseconds, a whole number from 100 to 600000',
    schema: wholeNumber(100, 600_000),
  },
  CDP_HTTP_REQUEST_TIMEOUT_MS: {
    name: 'CDP_HTTP_REQUEST_TIMEOUT_MS',
    description:
      'Time a client has to send a whole request (headers and body). Default `30000`; at least the header timeout.',
    form: 'milliseconds, a whole number from 100 to 3600000',
    schema: wholeNumber(100, 3_600_000),
  },
  CDP_HTTP_KEEP_ALIVE_TIMEOUT_MS: {
    name: 'CDP_HTTP_KEEP_ALIVE_TIMEOUT_MS',
    description:
      'How long an idle keep-alive connection stays open between requests. Default `65000`: longer than the idle timeouts of the clients and load balancers in front (undici 4 s, AWS ALB 60 s), so that they close an idle connection first and never send a request on one the server is closing (a reset).',
    form: 'milliseconds, a whole number from 100 to 600000',
    schema: wholeNumber(100, 600_000),
  },
  CDP_HTTP_MIN_BODY_BYTES_PER_SECOND: {
    name: 'CDP_HTTP_MIN_BODY_BYTES_PER_SECOND',
    description:
      'Slowest average rate a request body may arrive at (after a 1 s grace); a slower one gets 408. Default `1024`; `0` turns the check off.',
    form: 'bytes per second, a whole number from 0 to 1000000000',
    schema: wholeNumber(0, 1_000_000_000),
  },
  CDP_HTTP_MAX_CONNECTIONS_PER_CLIENT: {
    name: 'CDP_HTTP_MAX_CONNECTIONS_PER_CLIENT',
    description:
      'Connections one client address may hold open at once; more get 503 and are closed. Default `128`.',
    form: 'a whole number from 1 to 100000',
    schema: wholeNumber(1, 100_000),
  },
  CDP_API_KEY: {
    name: 'CDP_API_KEY',
    description:
      'API key the command line sends to a running platform (`cdp dlq ... --platform`). Unset: none.',
    form: 'a key issued by the platform, cdpk_<id>.<secret>',
    schema: z.string().min(1).max(200),
  },
  CDP_SHARD_URLS: {
    name: 'CDP_SHARD_URLS',
    description:
      "PostgreSQL servers (comma-separated URLs, one per shard) the reference platform's sharded tables are spread over by key (hash slots); one that does not parse or answer stops the start. Unset: two embedded PGlite shards under CDP_DATA_DIR (`shards/s1`, `shards/s2`; in memory with `memory://`).",
    form: 'comma-separated postgres:// URLs, one per shard',
    schema: z
      .string()
      .transform((v) => v.split(',').map((u) => u.trim()))
      .superRefine((urls, ctx) => {
        for (const u of urls) {
          let ok = false;
          try {
            const p = new URL(u);
            ok = (p.protocol === 'postgres:' || p.protocol === 'postgresql:') && p.host !== '';
          } catch {
            ok = false;
          }
          if (!ok)
            ctx.addIssue({
              code: 'custom',
              message: `shard URL ${JSON.stringify(redact('URL', u))} does not parse as postgres://user@host:port/database`,
            });
        }
        if (new Set(urls).size !== urls.length)
          ctx.addIssue({ code: 'custom', message: 'names one URL twice' });
      }),
  },
  CDP_SHARD_TEST_URLS: {
    name: 'CDP_SHARD_TEST_URLS',
    description:
      'PostgreSQL servers (comma-separated URLs, at least two) that the sharding test suites and the `sharding` benchmark create their shard databases on; the platform does not read it. Unset: those suites are skipped and the benchmark uses PGlite.',
    form: 'comma-separated postgres:// URLs',
    schema: z.string().min(1),
  },
  CDP_QUORUM_URLS: {
    name: 'CDP_QUORUM_URLS',
    description:
      'Redis servers (comma-separated URLs, at least three) that serve as the nodes of the quorum store demonstration. Unset: five in-process nodes.',
    form: 'comma-separated redis:// URLs, e.g. from tooling/redis-quorum-nodes.sh',
    schema: z
      .string()
      .min(1)
      .transform((v) => v.split(',').map((u) => u.trim()))
      .refine(
        (urls) => urls.length >= 3 && urls.every((u) => /^rediss?:\/\/[^\s,]+$/.test(u)),
        'must list at least three redis:// URLs separated by commas',
      ),
  },
  CDP_QUORUM_TEST_URLS: {
    name: 'CDP_QUORUM_TEST_URLS',
    description:
      'Redis servers (comma-separated URLs, five from tooling/redis-quorum-nodes.sh) that the quorum store test suites and the `replication` benchmark run their nodes on; the platform does not read it. Unset: those suites are skipped and the benchmark uses in-process nodes.',
    form: 'comma-separated redis:// URLs',
    schema: z.string().min(1),
  },
  CDP_REPLICA_URLS: {
    name: 'CDP_REPLICA_URLS',
    description:
      'Streaming standbys of the CDP_DATABASE_URL server (comma-separated URLs of the same database on each standby): the platform’s catalog reads from them, with read-your-writes for whoever just changed an entry. Needs CDP_DATABASE_URL. Unset: every read goes to the primary.',
    form: 'comma-separated postgres:// URLs',
    schema: z.string().min(1),
  },
  CDP_REPLICA_TEST_URLS: {
    name: 'CDP_REPLICA_TEST_URLS',
    description:
      'A PostgreSQL primary and two streaming standbys, primary first (comma-separated URLs; `tooling/pg-replica-clusters.sh` starts them) for the replication server suites and the replica cases of the `replication` benchmark; the platform does not read it. Unset: those suites and cases are skipped.',
    form: 'comma-separated postgres:// URLs, primary first',
    schema: z.string().min(1),
  },
  CDP_LOG_LEVEL: {
    name: 'CDP_LOG_LEVEL',
    description: 'pino log level (logs go to stderr as JSON). Default `info`.',
    form: 'one of fatal, error, warn, info, debug, trace, silent',
    schema: logLevel,
  },
} as const satisfies Record<string, VariableSpec<unknown>>;

export type VariableName = keyof typeof variables;

export interface Config {
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dataDir: string | undefined };
  dataDir: string;
  redisUrl: string | undefined;
  natsUrl: string | undefined;
  amqpUrl: string | undefined;
  /** MariaDB for two-phase commit (CDP_MARIADB_URL). */
  mariadbUrl: string | undefined;
  /** A PostgreSQL server that allows prepared transactions (CDP_PG_PREPARED_URL). */
  pgPreparedUrl: string | undefined;
  /** Redis servers as the quorum store's nodes (CDP_QUORUM_URLS); undefined: in-process nodes. */
  quorumUrls: string[] | undefined;
  /** Streaming standbys of the database server that the catalog reads from (CDP_REPLICA_URLS). */
  replicaUrls: string[];
  s3:
    | {
        endpoint: string;
        region: string;
        bucket: string;
        accessKeyId: string | undefined;
        secretAccessKey: string | undefined;
      }
    | undefined;
  /** The built-in storage server's credentials; undefined when not set (the platform then makes dev keys). */
  storage: { accessKeyId: string; secretAccessKey: string; region: string } | undefined;
  http: {
    host: string;
    port: number;
    /** Time to receive the request headers (Node's headersTimeout). */
    headersTimeoutMs: number;
    /** Time to receive the whole request (Node's requestTimeout). */
    requestTimeoutMs: number;
    /** Idle time between requests on a kept-alive connection. */
    keepAliveTimeoutMs: number;
    /** Slowest average body rate accepted; 0: no check. */
    minBodyBytesPerSecond: number;
    maxConnectionsPerClient: number;
  };
  /** Where the platform's sharded tables live (CDP_SHARD_URLS, or embedded PGlite shards). */
  shards: { kind: 'postgres'; urls: string[] } | { kind: 'pglite'; dataDir: string | undefined };
  /** The API key the command line sends to a running platform. */
  apiKey: string | undefined;
  logLevel: z.infer<typeof logLevel>;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function parseVariable<N extends VariableName>(
  env: Record<string, string | undefined>,
  name: N,
): z.infer<(typeof variables)[N]['schema']> | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const spec = variables[name];
  const result = spec.schema.safeParse(raw.trim());
  if (!result.success) {
    const why = result.error.issues.map((i) => i.message).join('; ');
    throw new ConfigError(
      `${name}=${JSON.stringify(redact(name, raw))} is not valid: ${why}. Expected ${spec.form}.`,
      name,
    );
  }
  return result.data as z.infer<(typeof variables)[N]['schema']>;
}

function redact(name: string, value: string): string {
  if (name.includes('SECRET') || name === 'CDP_API_KEY') return '***';
  try {
    const u = new URL(value);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return value;
  }
}

/**
 * Read and validate configuration from an environment. Any `CDP_*` variable that is not
 * known is an error (most often a typo), and the message suggests the nearest known name.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.keys(variables);
  for (const key of Object.keys(env)) {
    if (!key.startsWith('CDP_') || known.includes(key)) continue;
    const nearest = known.map((k) => ({ k, d: levenshtein(key, k) })).sort((a, b) => a.d - b.d)[0];
    const hint = nearest && nearest.d <= 4 ? ` Did you mean ${nearest.k}?` : '';
    throw new ConfigError(
      `${key} is not a variable cloud-data-patterns knows.${hint} Known variables: ${known.join(', ')}.`,
      key,
    );
  }
  const databaseUrl = parseVariable(env, 'CDP_DATABASE_URL');
  const dataDir = parseVariable(env, 'CDP_DATA_DIR') ?? './.cdp-data';
  const natsUrl = parseVariable(env, 'CDP_NATS_URL');
  const amqpUrl = parseVariable(env, 'CDP_AMQP_URL');
  const s3Endpoint = parseVariable(env, 'CDP_S3_ENDPOINT');
  const s3Key = parseVariable(env, 'CDP_S3_ACCESS_KEY_ID');
  const s3Secret = parseVariable(env, 'CDP_S3_SECRET_ACCESS_KEY');
  if (s3Endpoint && (s3Key === undefined) !== (s3Secret === undefined)) {
    throw new ConfigError(
      'CDP_S3_ACCESS_KEY_ID and CDP_S3_SECRET_ACCESS_KEY must be set together; set both or neither.',
      s3Key === undefined ? 'CDP_S3_ACCESS_KEY_ID' : 'CDP_S3_SECRET_ACCESS_KEY',
    );
  }
  const storageKey = parseVariable(env, 'CDP_STORAGE_ACCESS_KEY_ID');
  const storageSecret = parseVariable(env, 'CDP_STORAGE_SECRET_ACCESS_KEY');
  if ((storageKey === undefined) !== (storageSecret === undefined)) {
    throw new ConfigError(
      'CDP_STORAGE_ACCESS_KEY_ID and CDP_STORAGE_SECRET_ACCESS_KEY must be set together; set both or neither.',
      storageKey === undefined ? 'CDP_STORAGE_ACCESS_KEY_ID' : 'CDP_STORAGE_SECRET_ACCESS_KEY',
    );
  }
  const shardUrls = parseVariable(env, 'CDP_SHARD_URLS');
  const storageRegion = parseVariable(env, 'CDP_STORAGE_REGION') ?? 'us-east-1';
  const headersTimeoutMs = parseVariable(env, 'CDP_HTTP_HEADERS_TIMEOUT_MS') ?? 10_000;
  const requestTimeoutMs = parseVariable(env, 'CDP_HTTP_REQUEST_TIMEOUT_MS') ?? 30_000;
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(
      `CDP_HTTP_HEADERS_TIMEOUT_MS (${headersTimeoutMs}) is longer than CDP_HTTP_REQUEST_TIMEOUT_MS (${requestTimeoutMs}); make it at most the request timeout.`,
      'CDP_HTTP_HEADERS_TIMEOUT_MS',
    );
  }
  const replicaUrls = (parseVariable(env, 'CDP_REPLICA_URLS') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  for (const url of replicaUrls) {
    const protocol = URL.canParse(url) ? new URL(url).protocol : '';
    if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
      throw new ConfigError(
        `CDP_REPLICA_URLS holds ${JSON.stringify(redactUrl(url))}, not a postgres:// URL; give comma-separated URLs of standbys of the CDP_DATABASE_URL server`,
        'CDP_REPLICA_URLS',
      );
    }
  }
  if (replicaUrls.length > 0 && !databaseUrl) {
    throw new ConfigError(
      'CDP_REPLICA_URLS names standbys but CDP_DATABASE_URL is unset: replicas follow a PostgreSQL primary; set CDP_DATABASE_URL to it, or unset CDP_REPLICA_URLS',
      'CDP_REPLICA_URLS',
    );
  }
  return {
    database: databaseUrl
      ? { kind: 'postgres', url: databaseUrl }
      : { kind: 'pglite', dataDir: dataDir === 'memory://' ? undefined : dataDir },
    dataDir,
    redisUrl: parseVariable(env, 'CDP_REDIS_URL'),
    natsUrl,
    amqpUrl,
    mariadbUrl: parseVariable(env, 'CDP_MARIADB_URL'),
    pgPreparedUrl: parseVariable(env, 'CDP_PG_PREPARED_URL'),
    quorumUrls: parseVariable(env, 'CDP_QUORUM_URLS'),
    replicaUrls,
    s3: s3Endpoint
      ? {
          endpoint: s3Endpoint,
          region: parseVariable(env, 'CDP_S3_REGION') ?? 'us-east-1',
          bucket: parseVariable(env, 'CDP_S3_BUCKET') ?? 'cdp',
          accessKeyId: s3Key,
          secretAccessKey: s3Secret,
        }
      : undefined,
    storage:
      storageKey && storageSecret
        ? { accessKeyId: storageKey, secretAccessKey: storageSecret, region: storageRegion }
        : undefined,
    http: {
      host: parseVariable(env, 'CDP_HOST') ?? '127.0.0.1',
      port: parseVariable(env, 'CDP_PORT') ?? 8080,
      headersTimeoutMs,
      requestTimeoutMs,
      keepAliveTimeoutMs: parseVariable(env, 'CDP_HTTP_KEEP_ALIVE_TIMEOUT_MS') ?? 65_000,
      minBodyBytesPerSecond: parseVariable(env, 'CDP_HTTP_MIN_BODY_BYTES_PER_SECOND') ?? 1024,
      maxConnectionsPerClient: parseVariable(env, 'CDP_HTTP_MAX_CONNECTIONS_PER_CLIENT') ?? 128,
    },
    shards: shardUrls
      ? { kind: 'postgres', urls: shardUrls }
      : { kind: 'pglite', dataDir: dataDir === 'memory://' ? undefined : dataDir },
    apiKey: parseVariable(env, 'CDP_API_KEY'),
    logLevel: parseVariable(env, 'CDP_LOG_LEVEL') ?? 'info',
  };
}

/** Show a URL without its password, for logs and `cdp doctor`. */
export function redactUrl(url: string): string {
  return redact('URL', url);
}
