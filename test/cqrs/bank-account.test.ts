import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ValidationError } from '../../src/core/errors.js';
import { DomainError, deciderSpec, defineCommand } from '../../src/cqrs/index.js';
import {
  type AccountEvent,
  bankAccount,
  DepositMoney,
  main,
  OpenAccount,
  WithdrawMoney,
} from './bank-account.example.js';

/**
 * The neutral example of docs/patterns/cqrs.md (a bank account): the page shows
 * `bank-account.example.ts` verbatim (with the package's import paths), and it runs.
 */
const opened: AccountEvent = { type: 'AccountOpened', data: { accountId: 'a1', owner: 'ada' } };
const deposited = (amountCents: number): AccountEvent => ({
  type: 'MoneyDeposited',
  data: { accountId: 'a1', amountCents },
});
const account = deciderSpec(bankAccount);

describe('the bank-account decider, given / when / then', () => {
  it('opens an account once', () => {
    account
      .given([])
      .when(OpenAccount.parse({ accountId: 'a1', owner: 'ada' }))
      .thenEvents([opened]);
    account
      .given([opened])
      .when(OpenAccount.parse({ accountId: 'a1', owner: 'bob' }))
      .thenThrows(DomainError, /is open/);
  });

  it('refuses money on an account not opened, and a withdrawal beyond the balance', () => {
    account
      .given([])
      .when(DepositMoney.parse({ accountId: 'a1', amountCents: 100 }))
      .thenThrows(DomainError, /open it first/);
    account
      .given([opened, deposited(500)])
      .when(WithdrawMoney.parse({ accountId: 'a1', amountCents: 501 }))
      .thenThrows(DomainError, /holds 500 cents/);
    account
      .given([opened, deposited(500)])
      .when(WithdrawMoney.parse({ accountId: 'a1', amountCents: 500 }))
      .thenEvents([{ type: 'MoneyWithdrawn', data: { accountId: 'a1', amountCents: 500 } }]);
  });

  it('the spec fails on a wrong expectation', () => {
    expect(() =>
      account
        .given([])
        .when(OpenAccount.parse({ accountId: 'a1', owner: 'ada' }))
        .thenEvents([deposited(1)]),
    ).toThrow(/expected events/);
    expect(() =>
      account
        .given([])
        .when(OpenAccount.parse({ accountId: 'a1', owner: 'ada' }))
        .thenThrows(DomainError),
    ).toThrow(/expected DomainError/);
  });
});

describe('commands', () => {
  it('a malformed command is a ValidationError naming the fields', () => {
    let error: unknown;
    try {
      DepositMoney.parse({ accountId: '', amountCents: -1 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues.map((i) => i.path).sort()).toEqual([
      'accountId',
      'amountCents',
    ]);
  });

  it('refuses CRUD-shaped and non-PascalCase command names', () => {
    expect(() => defineCommand('SetBalance', z.object({}))).toThrow(/not a task/);
    expect(() => defineCommand('UpdateAccount', z.object({}))).toThrow(/RenameAccount/);
    expect(() => defineCommand('open-account', z.object({}))).toThrow(/PascalCase/);
    expect(defineCommand('CloseAccount', z.object({ id: z.string() })).parse({ id: 'x' })).toEqual({
      id: 'x',
      type: 'CloseAccount',
    });
  });
});

describe('the example of docs/patterns/cqrs.md', () => {
  it('runs: commands, a refused command, read-your-writes, a rebuild, a refreshed view', async () => {
    const r = await main();
    expect(r.balance).toEqual({ owner: 'ada', balance_cents: 3800 });
    expect(r.refused).toMatch(/holds 3800 cents, cannot withdraw 99999/);
    expect(r.rebuilt).toMatchObject({ events: 3, recreatedViews: ['bank_owner_totals_mv'] });
    expect(r.totals).toEqual([{ owner: 'ada', accounts: 1, total_cents: '3800' }]);
  });

  it('is shown verbatim on the page, with the package’s import paths', () => {
    const file = readFileSync(new URL('./bank-account.example.ts', import.meta.url), 'utf8')
      .replaceAll("'../../src/cqrs/index.js'", "'cloud-data-patterns/cqrs'")
      .replaceAll("'../../src/engines/sql/index.js'", "'cloud-data-patterns/sql'")
      .replaceAll("'../../src/events/index.js'", "'cloud-data-patterns/events'");
    const page = readFileSync(new URL('../../docs/patterns/cqrs.md', import.meta.url), 'utf8');
    // The page's first TypeScript block, between its fences.
    const lines = page.split('\n');
    const start = lines.indexOf('```ts');
    const end = lines.indexOf('```', start + 1);
    expect(start).toBeGreaterThan(0);
    expect(`${lines.slice(start + 1, end).join('\n')}\n`).toBe(file);
  });
});
