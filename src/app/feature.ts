import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { Lifecycle } from '../core/lifecycle.js';
import type { Migration } from '../engines/sql/migrations.js';
import type { SqlClient } from '../engines/sql/sql-client.js';
import type { ApiKeys } from './auth.js';

/**
 * A dashboard panel, described as data: the dashboard renders every panel the same way, so a
 * module adds a panel without touching the front end.
 */
export interface Panel {
  id: string;
  title: string;
  /** Headline figures; `hint` says in plain words what the figure means (shown on hover). */
  stats: { label: string; value: number | string; unit?: string; hint?: string }[];
  /**
   * Figures worth watching over time: each chart plots the named stats (by label) from the
   * history the dashboard keeps.
   */
  charts?: { title: string; stats: string[]; unit?: string; hint?: string }[];
  /** An optional table (a trace, a list of stalled readers, ...). */
  table?: { columns: string[]; rows: (string | number)[][] };
  /** Link to the pattern's page in docs/. */
  docs?: string;
}

export interface EngineStatus {
  role: string;
  engine: string;
  ok: boolean;
  detail?: string;
  latencyMs?: number;
}

/** What the platform hands each feature when it starts. */
export interface FeatureContext {
  config: Config;
  sql: SqlClient;
  logger: Logger;
  registry: Registry;
  clock: Clock;
  /** Register anything that must be closed at shutdown (closed in reverse order). */
  lifecycle: Lifecycle;
  /** Add routes under /api/<feature name>/... */
  http: FastifyInstance;
  /** Other features' exported services, by feature name (features start in list order). */
  services: Map<string, unknown>;
  /** API keys: `auth.require(req, ...roles)` gives the acting principal or refuses the request. */
  auth: ApiKeys;
}

export interface FeatureHandle {
  /** Exposed to features that start later, under this feature's name. */
  service?: unknown;
  panel?: () => Promise<Panel> | Panel;
  /** Status of engines this feature owns (shown by GET /health). */
  health?: () => Promise<EngineStatus[]>;
  /** Demonstrations a visitor runs from the dashboard (POST /api/demos/{id}). */
  demos?: Demo[];
}

/** The outcome of a demonstration: whether the pattern held, and the figures that show it. */
export interface DemoResult {
  /** True when what the demonstration claims was observed. */
  ok: boolean;
  /** One sentence saying what happened. */
  summary: string;
  figures: { label: string; value: number | string; unit?: string }[];
  /** What happened, in order. */
  steps: string[];
}

/**
 * A demonstration of a pattern at work, run server-side on the platform's own modules. It acts
 * only on data it creates itself (its own cache key, keys, events), or pauses a part it restarts
 * before it returns.
 */
export interface Demo {
  /** URL-safe id, unique across features. */
  id: string;
  title: string;
  /** What the visitor will see, in plain words. */
  description: string;
  /** The feature (dashboard page) it belongs to. */
  feature: string;
  run(): Promise<DemoResult>;
}

/**
 * One part of the reference platform, composing one or more pattern modules. Features own no
 * pattern logic: they wire modules to HTTP, the dashboard and the other features.
 */
export interface PlatformFeature {
  name: string;
  description: string;
  /** Pattern pages in docs/ that this feature demonstrates. */
  docs: string[];
  /** Numbered migrations of the modules it uses, applied at start and by `cdp migrate`. */
  migrations?: Migration[];
  start(ctx: FeatureContext): Promise<FeatureHandle>;
}
