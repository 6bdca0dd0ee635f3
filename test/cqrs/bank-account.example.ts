import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import {
  CommandHandler,
  type Decider,
  DomainError,
  defineCommand,
  openAsyncProjection,
  ReadModelQueries,
  type RebuildableProjection,
  rebuildProjection,
  refreshMaterializedViews,
  ViewRefresher,
} from '../../src/cqrs/index.js';
import { type Migration, migrate, PgliteSqlClient } from '../../src/engines/sql/index.js';
import { SqlEventStore } from '../../src/events/index.js';

// Commands name tasks and are validated by zod at the boundary.
export const OpenAccount = defineCommand(
  'OpenAccount',
  z.object({ accountId: z.string().min(1), owner: z.string().min(1) }),
);
export const DepositMoney = defineCommand(
  'DepositMoney',
  z.object({ accountId: z.string().min(1), amountCents: z.number().int().positive() }),
);
export const WithdrawMoney = defineCommand(
  'WithdrawMoney',
  z.object({ accountId: z.string().min(1), amountCents: z.number().int().positive() }),
);
type AccountCommand =
  | ReturnType<typeof OpenAccount.parse>
  | ReturnType<typeof DepositMoney.parse>
  | ReturnType<typeof WithdrawMoney.parse>;

export type AccountEvent =
  | { type: 'AccountOpened'; data: { accountId: string; owner: string } }
  | { type: 'MoneyDeposited'; data: { accountId: string; amountCents: number } }
  | { type: 'MoneyWithdrawn'; data: { accountId: string; amountCents: number } };

export interface AccountState {
  owner: string | null;
  balanceCents: number;
}

// The write side: plain functions, no I/O.
export const bankAccount: Decider<AccountCommand, AccountEvent, AccountState> = {
  name: 'bank-account',
  version: 1,
  initialState: () => ({ owner: null, balanceCents: 0 }),
  evolve(state, event) {
    switch (event.type) {
      case 'AccountOpened':
        return { owner: event.data.owner, balanceCents: 0 };
      case 'MoneyDeposited':
        return { ...state, balanceCents: state.balanceCents + event.data.amountCents };
      case 'MoneyWithdrawn':
        return { ...state, balanceCents: state.balanceCents - event.data.amountCents };
    }
  },
  decide(command, state) {
    if (command.type === 'OpenAccount') {
      if (state.owner !== null) throw new DomainError(`account ${command.accountId} is open`);
      return [
        { type: 'AccountOpened', data: { accountId: command.accountId, owner: command.owner } },
      ];
    }
    if (state.owner === null) {
      throw new DomainError(`account ${command.accountId} is not open: open it first`);
    }
    const { accountId, amountCents } = command;
    if (command.type === 'DepositMoney') {
      return [{ type: 'MoneyDeposited', data: { accountId, amountCents } }];
    }
    if (amountCents > state.balanceCents) {
      throw new DomainError(
        `account ${accountId} holds ${state.balanceCents} cents, cannot withdraw ${amountCents}`,
      );
    }
    return [{ type: 'MoneyWithdrawn', data: { accountId, amountCents } }];
  },
};

// The read side: a table per account, and a materialized view of totals per owner over it.
export const bankMigrations: Migration[] = [
  {
    module: 'bank-example',
    version: 1,
    name: 'balances and totals per owner',
    sql: `
CREATE TABLE bank_balances (account_id text PRIMARY KEY, owner text NOT NULL, balance_cents bigint NOT NULL);
CREATE MATERIALIZED VIEW bank_owner_totals_mv AS
  SELECT owner, count(*) AS accounts, sum(balance_cents) AS total_cents FROM bank_balances GROUP BY owner;
CREATE UNIQUE INDEX bank_owner_totals_mv_key ON bank_owner_totals_mv (owner);`,
  },
];

// A projection names its tables, so that a rebuild can write copies and swap them in.
export function balancesProjection(table = 'bank_balances'): RebuildableProjection {
  return {
    name: 'bank-balances',
    types: ['AccountOpened', 'MoneyDeposited', 'MoneyWithdrawn'],
    tables: [table],
    withTables: (names) => balancesProjection(names[table] ?? table),
    async apply(event, tx) {
      const e = event as unknown as AccountEvent;
      if (e.type === 'AccountOpened') {
        await tx.query(
          `INSERT INTO ${table} (account_id, owner, balance_cents) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING`,
          [e.data.accountId, e.data.owner],
        );
      } else {
        const delta = e.type === 'MoneyDeposited' ? e.data.amountCents : -e.data.amountCents;
        await tx.query(
          `UPDATE ${table} SET balance_cents = balance_cents + $2 WHERE account_id = $1`,
          [e.data.accountId, delta],
        );
      }
    },
  };
}

export async function main() {
  const sql = await PgliteSqlClient.open({}); // in memory; { dataDir } keeps it in a folder
  const store = await SqlEventStore.open(sql);
  await migrate(sql, bankMigrations);
  const accounts = new CommandHandler({
    store,
    decider: bankAccount,
    streamId: (c) => `account-${c.accountId}`,
  });
  const live = await openAsyncProjection(store, balancesProjection());
  const refresher = ViewRefresher.open(sql, {
    views: ['bank_owner_totals_mv'],
    intervalMs: 60_000,
  });
  try {
    await accounts.handle(OpenAccount.parse({ accountId: 'a1', owner: 'ada' }));
    await accounts.handle(DepositMoney.parse({ accountId: 'a1', amountCents: 5000 }));
    const { position } = await accounts.handle(
      WithdrawMoney.parse({ accountId: 'a1', amountCents: 1200 }),
    );
    let refused = '';
    try {
      await accounts.handle(WithdrawMoney.parse({ accountId: 'a1', amountCents: 99_999 }));
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      refused = err.message;
    }

    // Read your own write: wait until the async read model has the command's position.
    const queries = new ReadModelQueries(sql);
    const balance = await queries.query(
      'bank-balances',
      async (q) =>
        (
          await q.query('SELECT owner, balance_cents FROM bank_balances WHERE account_id = $1', [
            'a1',
          ])
        ).rows[0],
      { after: position, timeoutMs: 5000 },
    );

    // Rebuild the read model from the events while it keeps serving, then swap it in.
    const rebuilt = await rebuildProjection(store, balancesProjection());

    // The materialized view is as fresh as its last refresh (the refresher's, or this one).
    await refreshMaterializedViews(sql, ['bank_owner_totals_mv']);
    const totals = (
      await sql.query('SELECT owner, accounts, total_cents FROM bank_owner_totals_mv')
    ).rows;
    return { balance, refused, rebuilt, totals };
  } finally {
    await refresher.close();
    await live.close();
    await sql.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await main());
}
