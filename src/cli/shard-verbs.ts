/**
 * `cdp shard status|plan add|move` and `cdp index check|repair`: the sharding feature of a
 * started platform, through its HTTP API (the platform holds the shards, embedded ones
 * included). Loads nothing but commander until a command runs.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { CdpError, errorMessage } from '../core/errors.js';
import type { IndexCheckReport } from '../sharding/index.js';
import { fail, httpUrl } from './options.js';
import { textTable } from './text-table.js';

interface Move {
  id: string;
  unit: string;
  source: string;
  target: string;
  phase: string;
  rowsTotal: number;
  rowsCopied: number;
  fenceMs: number | null;
  error: string | null;
}

interface Status {
  map: string;
  version: number;
  slotCount: number;
  shards: { id: string; location: string; slots: number; rows: Record<string, number> }[];
  move: Move | null;
  indexes: { name: string; lagMs: number }[];
  hotSlots: { unit: string; count: number; ratio: number; suggestion: string }[];
}

interface Plan {
  shard: string;
  location: string;
  moves: { unit: string; source: string; target: string; rows: number }[];
  rowsMoved: number;
  rowsTotal: number;
  unitsAfter: Record<string, number>;
}

const INDEXES = ['courses_by_instructor', 'students_by_email'];

export function formatMove(m: Move): string {
  const pct = m.rowsTotal > 0 ? Math.round((m.rowsCopied / m.rowsTotal) * 100) : 0;
  return `move ${m.id} ${m.unit} ${m.source} -> ${m.target}: ${m.phase} (${m.rowsCopied}/${m.rowsTotal} rows, ${pct}%)${m.fenceMs !== null ? `, writes fenced ${m.fenceMs} ms` : ''}${m.error ? `; ${m.error}` : ''}`;
}

export function formatStatus(s: Status): string {
  const tables = [...new Set(s.shards.flatMap((x) => Object.keys(x.rows)))].sort();
  const out = [
    `map ${s.map} version ${s.version}, ${s.slotCount} slots over ${s.shards.length} shards`,
    textTable([
      ['shard', 'slots', ...tables, 'location'],
      ...s.shards.map((x) => [
        x.id,
        String(x.slots),
        ...tables.map((t) => String(x.rows[t] ?? 0)),
        x.location,
      ]),
    ]),
    s.move ? formatMove(s.move) : 'no move yet',
    `index lag: ${s.indexes.map((i) => `${i.name} ${Math.round(i.lagMs)} ms`).join(', ')}`,
  ];
  for (const h of s.hotSlots)
    out.push(`hot ${h.unit}: ${h.count} transactions (${h.ratio}x the mean); ${h.suggestion}`);
  return out.join('\n');
}

export function formatPlan(p: Plan): string {
  const lines = [
    `adding ${p.shard} (${p.location}) would move ${p.moves.length} slots, ${p.rowsMoved} of ${p.rowsTotal} rows; nothing was moved`,
  ];
  if (p.moves.length > 0)
    lines.push(
      textTable([
        ['slot', 'from', 'to', 'rows'],
        ...p.moves.map((m) => [m.unit, m.source, m.target, String(m.rows)]),
      ]),
    );
  lines.push(
    `slots after: ${Object.entries(p.unitsAfter)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  return lines.join('\n');
}

export function formatCheck(r: IndexCheckReport, repaired: boolean): string {
  const found = r.missing + r.extra + r.stale;
  const head = `index ${r.index}: ${r.baseRows} base rows, ${r.indexRows} index rows; ${r.missing} missing, ${r.extra} extra, ${r.stale} stale${repaired && found > 0 ? ` (all ${found} repaired)` : ''}`;
  return [
    head,
    ...r.samples.map((x) => `  ${x.kind} value ${x.value} key ${x.key} on ${x.shard}`),
  ].join('\n');
}

async function call(base: string, path: string, init?: RequestInit): Promise<unknown> {
  const { loadConfig } = await import('../core/config.js');
  const apiKey = loadConfig(process.env).apiKey;
  const headers = new Headers(init?.headers);
  if (apiKey) headers.set('authorization', `Bearer ${apiKey}`);
  if (init?.body) headers.set('content-type', 'application/json');
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { ...init, headers });
  } catch (err) {
    throw new CdpError(
      'PLATFORM_UNREACHABLE',
      `no platform answers at ${base} (${errorMessage(err)}); start it with \`cdp start\` or pass --platform <url>`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string };
  };
  if (!res.ok)
    throw new CdpError(
      body.error?.code ?? 'PLATFORM_ERROR',
      body.error?.message ?? `${init?.method ?? 'GET'} ${path} answered ${res.status}`,
    );
  return body;
}

function slotArg(v: string): number {
  const n = Number(v.startsWith('slot:') ? v.slice(5) : v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('must be a slot number (0, 1, ...) or slot:<n>');
  return n;
}

function indexArg(v: string): string {
  if (!INDEXES.includes(v)) throw new InvalidArgumentError(`must be one of ${INDEXES.join(', ')}`);
  return v;
}

const platformOption = [
  '--platform <url>',
  'the started platform (default: http://127.0.0.1:CDP_PORT)',
  httpUrl('http://127.0.0.1:8080'),
] as const;

async function baseOf(opts: { platform?: string }): Promise<string> {
  if (opts.platform) return opts.platform;
  const { loadConfig } = await import('../core/config.js');
  return `http://127.0.0.1:${loadConfig(process.env).http.port || 8080}`;
}

export function registerShardCommands(program: Command): void {
  const shard = program
    .command('shard')
    .description('the platform shard map (through the started platform; needs CDP_API_KEY)');
  shard
    .command('status')
    .description('slots and rows per shard, the move in progress, index lag, hot slots')
    .option(...platformOption)
    .option('--json', 'print JSON')
    .action(async (opts: { platform?: string; json?: boolean }) => {
      try {
        const s = (await call(await baseOf(opts), '/api/sharding/status')) as Status;
        process.stdout.write(`${opts.json ? JSON.stringify(s, null, 2) : formatStatus(s)}\n`);
      } catch (err) {
        fail(err);
      }
    });
  shard
    .command('plan')
    .description('what would move, and how many rows, before anything moves')
    .command('add')
    .description('plan adding the PostgreSQL server at <url> as a new shard')
    .argument('<url>', 'postgres://user@host:port/database')
    .option(...platformOption)
    .option('--json', 'print JSON')
    .action(async (url: string, opts: { platform?: string; json?: boolean }) => {
      try {
        const p = (await call(await baseOf(opts), '/api/sharding/plans', {
          method: 'POST',
          body: JSON.stringify({ add: url }),
        })) as Plan;
        process.stdout.write(`${opts.json ? JSON.stringify(p, null, 2) : formatPlan(p)}\n`);
      } catch (err) {
        fail(err);
      }
    });
  shard
    .command('move')
    .description('move a slot to another shard while writers write, showing its progress')
    .argument('<slot>', 'the slot (a number, or slot:<n>)', slotArg)
    .argument('<target>', 'the shard to move it to (e.g. s2)')
    .option(...platformOption)
    .option('--no-wait', 'start the move and return')
    .action(async (slot: number, target: string, opts: { platform?: string; wait: boolean }) => {
      try {
        const base = await baseOf(opts);
        let m = (await call(base, '/api/sharding/moves', {
          method: 'POST',
          body: JSON.stringify({ slot, target }),
        })) as Move;
        const { Progress } = await import('./progress.js');
        const progress = new Progress({
          label: `move slot:${slot}`,
          total: 100,
          line: (l) => process.stdout.write(`${l}\n`),
        });
        let last = '';
        const show = () => {
          const line = formatMove(m);
          if (line === last) return;
          last = line;
          const pct = m.rowsTotal > 0 ? Math.round((m.rowsCopied / m.rowsTotal) * 100) : 0;
          progress.step(line, { done: m.phase === 'done' ? 100 : pct, detail: m.phase });
        };
        show();
        while (opts.wait && m.phase !== 'done' && m.phase !== 'rolled-back') {
          await new Promise((r) => setTimeout(r, 200));
          m = (await call(base, `/api/sharding/moves/${encodeURIComponent(m.id)}`)) as Move;
          show();
        }
        progress.end();
        // A terminal showed a bar: the last state goes on a line of its own.
        if (progress.interactive) process.stdout.write(`${formatMove(m)}\n`);
        if (m.phase === 'rolled-back') process.exitCode = 1;
      } catch (err) {
        fail(err);
      }
    });

  const index = program
    .command('index')
    .description('index tables of the platform shard map (through the started platform)');
  for (const verb of ['check', 'repair'] as const) {
    index
      .command(verb)
      .description(
        verb === 'check'
          ? 'compare base rows and index rows on every shard (exit 1 when they diverge)'
          : 'check, then fix every divergence found',
      )
      .argument('<name>', INDEXES.join(' | '), indexArg)
      .option(...platformOption)
      .option('--json', 'print JSON')
      .action(async (name: string, opts: { platform?: string; json?: boolean }) => {
        try {
          const r = (await call(
            await baseOf(opts),
            `/api/sharding/indexes/${name}/${verb}`,
            verb === 'repair' ? { method: 'POST' } : undefined,
          )) as IndexCheckReport;
          process.stdout.write(
            `${opts.json ? JSON.stringify(r, null, 2) : formatCheck(r, verb === 'repair')}\n`,
          );
          if (verb === 'check' && r.missing + r.extra + r.stale > 0) process.exitCode = 1;
        } catch (err) {
          fail(err);
        }
      });
  }
}
