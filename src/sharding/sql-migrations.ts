import type { Migration } from '../engines/sql/migrations.js';

/**
 * The catalog's schema (module 'sharding'): maps and their version, physical shards, the owner
 * of every slot, range and directory key, the sharded tables, and persisted moves. Apply to the
 * catalog database with migrate(sql, shardingMigrations).
 */
export const shardingMigrations: Migration[] = [
  {
    module: 'sharding',
    version: 1,
    name: 'shard maps, shards, slots, ranges, directory, tables and moves',
    sql: `
CREATE TABLE cdp_shard_maps (
  name text PRIMARY KEY,
  strategy text NOT NULL CHECK (strategy IN ('lookup', 'range', 'hash')),
  key_type text NOT NULL CHECK (key_type IN ('text', 'bigint')),
  slot_count integer NOT NULL DEFAULT 0,
  version bigint NOT NULL DEFAULT 1
);

CREATE TABLE cdp_shards (
  map text NOT NULL REFERENCES cdp_shard_maps (name),
  id text NOT NULL,
  location text NOT NULL,
  PRIMARY KEY (map, id)
);

-- Exactly one owner per slot: the primary key makes two owners impossible, NOT NULL none.
CREATE TABLE cdp_shard_slots (
  map text NOT NULL,
  slot integer NOT NULL,
  shard text NOT NULL,
  PRIMARY KEY (map, slot),
  FOREIGN KEY (map, shard) REFERENCES cdp_shards (map, id)
);

CREATE TABLE cdp_shard_ranges (
  map text NOT NULL,
  id integer NOT NULL,
  lo text,
  shard text NOT NULL,
  PRIMARY KEY (map, id),
  FOREIGN KEY (map, shard) REFERENCES cdp_shards (map, id)
);
CREATE UNIQUE INDEX cdp_shard_ranges_lo ON cdp_shard_ranges (map, coalesce(lo, ''), (lo IS NULL));

CREATE TABLE cdp_shard_directory (
  map text NOT NULL,
  key text NOT NULL,
  shard text NOT NULL,
  PRIMARY KEY (map, key),
  FOREIGN KEY (map, shard) REFERENCES cdp_shards (map, id)
);

CREATE TABLE cdp_shard_tables (
  map text NOT NULL REFERENCES cdp_shard_maps (name),
  table_name text NOT NULL,
  key_column text NOT NULL,
  PRIMARY KEY (map, table_name)
);

CREATE TABLE cdp_shard_moves (
  id text PRIMARY KEY,
  map text NOT NULL REFERENCES cdp_shard_maps (name),
  unit text NOT NULL,
  source text NOT NULL,
  target text NOT NULL,
  phase text NOT NULL,
  rows_total bigint NOT NULL DEFAULT 0,
  rows_copied bigint NOT NULL DEFAULT 0,
  fence_started_at_ms bigint,
  fence_ms integer,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- At most one running move per map.
CREATE UNIQUE INDEX cdp_shard_moves_running ON cdp_shard_moves (map)
  WHERE phase NOT IN ('done', 'rolled-back');
`,
  },
  {
    module: 'sharding',
    version: 2,
    name: 'index table definitions',
    sql: `
CREATE TABLE cdp_shard_indexes (
  map text NOT NULL REFERENCES cdp_shard_maps (name),
  name text NOT NULL,
  definition jsonb NOT NULL,
  PRIMARY KEY (map, name)
);
`,
  },
];

/**
 * Each shard's own schema (module 'sharding-shard'): the slot function (the same value as
 * keyHash32 in TypeScript), the units this shard owns (the write fence checks it in every
 * routed transaction), and the change log a move's catch-up replays. Apply to every shard.
 */
export const shardingShardMigrations: Migration[] = [
  {
    module: 'sharding-shard',
    version: 1,
    name: 'slot function, owned units and change log',
    sql: `
CREATE FUNCTION cdp_shard_slot(k text, n integer) RETURNS integer
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT ((('x' || substr(md5(k), 1, 8))::bit(32)::bigint) % n)::integer $$;

-- since_version: the map version from which a router may write the unit here; a router with an
-- older map (one that routed by a definition the unit has since changed) is fenced and refreshes.
CREATE TABLE cdp_shard_owned (
  map text NOT NULL,
  unit text NOT NULL,
  since_version bigint NOT NULL,
  PRIMARY KEY (map, unit)
);

CREATE TABLE cdp_shard_changes (
  seq bigserial PRIMARY KEY,
  tbl text NOT NULL,
  key text NOT NULL
);

CREATE FUNCTION cdp_shard_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO cdp_shard_changes (tbl, key) VALUES (TG_TABLE_NAME, to_jsonb(OLD) ->> TG_ARGV[0]);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO cdp_shard_changes (tbl, key) VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0]);
  END IF;
  RETURN NULL;
END $$;
`,
  },
  {
    module: 'sharding-shard',
    version: 2,
    name: 'index maintenance queue',
    sql: `
-- Written in the base row's transaction when an index entry lives on another shard: a
-- transactional outbox that IndexTables.drain() applies to the index shards.
CREATE TABLE cdp_shard_index_queue (
  seq bigserial PRIMARY KEY,
  index_name text NOT NULL,
  key text NOT NULL,
  old_value text,
  enqueued_at_ms bigint NOT NULL
);
`,
  },
];
