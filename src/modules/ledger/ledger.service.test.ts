import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, ERROR_STATUS } from '../../platform/errors.ts';
import { isId } from '../../platform/ids.ts';
import { useTestDb } from '../../platform/testing.ts';
import { createLedgerService, type EntryInput, type EntryLine } from './index.ts';
import { acct, count, cr, dr, entry, ref } from './testkit.ts';

const ledger = createLedgerService();

const isAppError = (code: string, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AppError, `expected AppError, got ${String(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  if (message) assert.match(e.message, message);
  return true;
};

describe('ledger.post', () => {
  const db = useTestDb();

  test('posts a balanced entry and keeps balances on the normal side', async () => {
    const cash = acct('t1:cash', 'asset');
    const payable = acct('t1:payable', 'liability');
    const fee = acct('t1:fee', 'revenue');
    const r = await db.tx((tx) =>
      ledger.post(tx, entry([dr(cash, 10_000), cr(payable, 9_800), cr(fee, 200)], { memo: 'first sale' })),
    );
    assert.equal(r.duplicate, false);
    assert.ok(isId('journal', r.journalId), r.journalId);
    assert.equal(await ledger.balance(db, 't1:cash'), 10_000);
    assert.equal(await ledger.balance(db, 't1:payable'), 9_800);
    assert.equal(await ledger.balance(db, 't1:fee'), 200);
    const e = await db.query<{ book: string; kind: string; memo: string }>(
      'SELECT book, kind, memo FROM ledger.entries WHERE id = $1',
      [r.journalId],
    );
    assert.deepEqual(e.rows[0], { book: 'INR', kind: 'test.entry', memo: 'first sale' });
    const p = await db.query<{ amount: number }>(
      'SELECT amount FROM ledger.postings WHERE entry_id = $1 ORDER BY line',
      [r.journalId],
    );
    assert.deepEqual(
      p.rows.map((x) => x.amount),
      [10_000, -9_800, -200],
      'debits positive, credits negative, in line order',
    );

    // Paying the merchant out lowers both sides.
    await db.tx((tx) => ledger.post(tx, entry([dr(payable, 9_800), cr(cash, 9_800)])));
    assert.equal(await ledger.balance(db, 't1:cash'), 200);
    assert.equal(await ledger.balance(db, 't1:payable'), 0);
    assert.deepEqual(await ledger.verify(db), []);
  });

  test('expense and equity accounts follow their normal side', async () => {
    await ledger.post(db, entry([dr(acct('t2:cash', 'asset'), 500), cr(acct('t2:capital', 'equity'), 500)]));
    await ledger.post(db, entry([dr(acct('t2:rent', 'expense'), 120), cr(acct('t2:cash', 'asset'), 120)]));
    assert.equal(await ledger.balance(db, 't2:capital'), 500);
    assert.equal(await ledger.balance(db, 't2:rent'), 120);
    assert.equal(await ledger.balance(db, 't2:cash'), 380);
  });

  test('balance is 0 for an unknown account, and books are separate', async () => {
    assert.equal(await ledger.balance(db, 'no:such:account'), 0);
    const pts = acct('t3:points', 'liability');
    const issued = acct('t3:issued', 'expense');
    await ledger.post(db, entry([dr(issued, 70), cr(pts, 70)], { book: 'PTS' }));
    assert.equal(await ledger.balance(db, 't3:points', 'PTS'), 70);
    assert.equal(await ledger.balance(db, 't3:points'), 0, 'the INR book has no such account');
    assert.equal(await ledger.balance(db, 't3:points', 'INR'), 0);
  });

  test('the same account on two lines nets out', async () => {
    const a = acct('t4:a', 'asset');
    const b = acct('t4:b', 'liability');
    await ledger.post(db, entry([dr(a, 100), cr(b, 100)]));
    await ledger.post(db, entry([dr(a, 30), cr(a, 30), dr(a, 5), cr(b, 5)]));
    assert.equal(await ledger.balance(db, 't4:a'), 105);
    assert.equal(await ledger.balance(db, 't4:b'), 105);
    assert.deepEqual(await ledger.verify(db), []);
  });

  describe('validation', () => {
    const a = acct('v:a', 'asset');
    const b = acct('v:b', 'liability');
    const cases: [string, EntryInput, string, RegExp?][] = [
      ['no lines', entry([]), 'validation_failed', /at least 2 lines/],
      ['one line', entry([dr(a, 1)]), 'validation_failed', /at least 2 lines/],
      ['lines not an array', { kind: 'k', reference: 'r', lines: {} as unknown as EntryLine[] }, 'validation_failed'],
      [
        'both debit and credit',
        entry([{ account: a, debit: 5, credit: 5 }, cr(b, 0 + 5)]),
        'validation_failed',
        /exactly one/,
      ],
      ['neither debit nor credit', entry([{ account: a }, cr(b, 5)]), 'validation_failed', /exactly one/],
      ['zero amount', entry([dr(a, 0), cr(b, 0)]), 'invalid_amount', /greater than zero/],
      ['negative debit', entry([dr(a, -5), cr(b, -5)]), 'invalid_amount', /greater than zero/],
      ['negative credit balancing a debit', entry([dr(a, 5), dr(b, 10), cr(b, -5)]), 'invalid_amount'],
      ['fractional amount', entry([dr(a, 1.5), cr(b, 1.5)]), 'invalid_amount', /safe integer/],
      ['unsafe integer', entry([dr(a, 2 ** 53), cr(b, 2 ** 53)]), 'invalid_amount', /safe integer/],
      ['NaN', entry([dr(a, NaN), cr(b, NaN)]), 'invalid_amount'],
      ['Infinity', entry([dr(a, Infinity), cr(b, Infinity)]), 'invalid_amount'],
      ['amount as a string', entry([dr(a, '5' as unknown as number), cr(b, 5)]), 'invalid_amount'],
      ['unbalanced', entry([dr(a, 100), cr(b, 99)]), 'validation_failed', /unbalanced/],
      ['unbalanced, only debits', entry([dr(a, 1), dr(b, 1)]), 'validation_failed', /unbalanced/],
      [
        'total beyond the safe range',
        entry([dr(a, Number.MAX_SAFE_INTEGER), dr(a, 1), cr(b, Number.MAX_SAFE_INTEGER), cr(b, 1)]),
        'invalid_amount',
        /safe integer/,
      ],
      ['unknown account type', entry([dr(acct('v:x', 'cash' as never), 1), cr(b, 1)]), 'validation_failed', /type/],
      ['empty account code', entry([dr(acct('', 'asset'), 1), cr(b, 1)]), 'validation_failed', /code/],
      ['account code with a space', entry([dr(acct('v a', 'asset'), 1), cr(b, 1)]), 'validation_failed', /code/],
      ['missing account', entry([{ debit: 1 } as EntryLine, cr(b, 1)]), 'validation_failed', /account/],
      ['floor above zero', entry([dr(acct('v:f', 'asset', 10), 1), cr(b, 1)]), 'invalid_amount', /floor/],
      ['fractional floor', entry([dr(acct('v:f', 'asset', -0.5), 1), cr(b, 1)]), 'invalid_amount', /floor/],
      [
        'one account with two types',
        entry([dr(acct('v:same', 'asset'), 1), cr(acct('v:same', 'liability'), 1)]),
        'validation_failed',
        /two types/,
      ],
      [
        'one account with two floors',
        entry([dr(acct('v:same', 'asset', 0), 1), cr(acct('v:same', 'asset', -5), 1)]),
        'validation_failed',
        /two floors/,
      ],
      ['empty kind', entry([dr(a, 1), cr(b, 1)], { kind: '' }), 'validation_failed', /kind/],
      ['empty reference', entry([dr(a, 1), cr(b, 1)], { reference: '' }), 'validation_failed', /reference/],
      ['bad book', entry([dr(a, 1), cr(b, 1)], { book: 'inr' }), 'validation_failed', /book/],
      ['memo not a string', entry([dr(a, 1), cr(b, 1)], { memo: 5 as unknown as string }), 'validation_failed', /memo/],
    ];
    for (const [name, input, code, message] of cases) {
      test(`rejects ${name} and writes nothing`, async () => {
        const before = [await count(db, 'entries'), await count(db, 'postings'), await count(db, 'accounts')];
        await assert.rejects(
          db.tx((tx) => ledger.post(tx, input)),
          isAppError(code, message),
        );
        const after = [await count(db, 'entries'), await count(db, 'postings'), await count(db, 'accounts')];
        assert.deepEqual(after, before);
      });
    }

    test('error codes map to 4xx statuses', () => {
      assert.equal(ERROR_STATUS.validation_failed, 400);
      assert.equal(ERROR_STATUS.invalid_amount, 400);
      assert.equal(ERROR_STATUS.insufficient_funds, 409);
      assert.equal(ERROR_STATUS.conflict, 409);
    });
  });

  describe('duplicates', () => {
    test('posting the same (kind, reference) twice writes nothing the second time', async () => {
      const cash = acct('d1:cash', 'asset');
      const payable = acct('d1:payable', 'liability');
      const e = entry([dr(cash, 700), cr(payable, 700)], { kind: 'payment.succeeded', reference: ref('pay') });
      const first = await db.tx((tx) => ledger.post(tx, e));
      const counts = [await count(db, 'entries'), await count(db, 'postings')];
      const second = await db.tx((tx) => ledger.post(tx, e));
      assert.deepEqual(second, { journalId: first.journalId, duplicate: true });
      assert.deepEqual([await count(db, 'entries'), await count(db, 'postings')], counts);
      assert.equal(await ledger.balance(db, 'd1:cash'), 700);
      assert.equal(await ledger.balance(db, 'd1:payable'), 700);

      // Lines in another order are still the same event.
      const third = await ledger.post(db, { ...e, lines: [...e.lines].reverse(), memo: 'again' });
      assert.deepEqual(third, { journalId: first.journalId, duplicate: true });
    });

    test('a duplicate of a post that was rolled back is not a duplicate', async () => {
      const e = entry([dr(acct('d2:cash', 'asset'), 5), cr(acct('d2:payable', 'liability'), 5)]);
      await assert.rejects(
        db.tx(async (tx) => {
          await ledger.post(tx, e);
          throw new Error('caller failed later');
        }),
        /caller failed later/,
      );
      const r = await db.tx((tx) => ledger.post(tx, e));
      assert.equal(r.duplicate, false);
      assert.equal(await ledger.balance(db, 'd2:cash'), 5);
    });

    test('the same kind and reference in another book or of another kind is a new entry', async () => {
      const reference = ref('pay');
      const lines = [dr(acct('d3:a', 'asset'), 9), cr(acct('d3:b', 'liability'), 9)];
      const a = await ledger.post(db, { kind: 'payment.succeeded', reference, lines });
      const b = await ledger.post(db, { kind: 'payment.succeeded', reference, lines, book: 'PTS' });
      const c = await ledger.post(db, { kind: 'refund.succeeded', reference, lines: [lines[1], lines[0]].map(flip) });
      assert.equal(a.duplicate || b.duplicate || c.duplicate, false);
      assert.equal(new Set([a.journalId, b.journalId, c.journalId]).size, 3);
    });

    test('the same (kind, reference) with other lines is a conflict, not a silent duplicate', async () => {
      const cash = acct('d4:cash', 'asset');
      const payable = acct('d4:payable', 'liability');
      const e = entry([dr(cash, 100), cr(payable, 100)]);
      await ledger.post(db, e);
      await assert.rejects(
        ledger.post(db, { ...e, lines: [dr(cash, 101), cr(payable, 101)] }),
        isAppError('conflict', /already posted with different lines/),
      );
      await assert.rejects(
        ledger.post(db, { ...e, lines: [dr(cash, 100), cr(acct('d4:other', 'liability'), 100)] }),
        isAppError('conflict'),
      );
      assert.equal(await ledger.balance(db, 'd4:cash'), 100);
    });
  });

  describe('account types', () => {
    test('an existing code used with another type is a conflict', async () => {
      await ledger.post(db, entry([dr(acct('ty:cash', 'asset'), 10), cr(acct('ty:payable', 'liability'), 10)]));
      const before = await count(db, 'entries');
      await assert.rejects(
        db.tx((tx) =>
          ledger.post(tx, entry([dr(acct('ty:cash', 'expense'), 10), cr(acct('ty:payable', 'liability'), 10)])),
        ),
        isAppError('conflict', /ty:cash is a asset account, not expense/),
      );
      assert.equal(await count(db, 'entries'), before);
      assert.equal(await ledger.balance(db, 'ty:cash'), 10);
    });

    test('an existing code used with another floor is a conflict; no floor given accepts any', async () => {
      const wallet = acct('ty:wallet', 'liability', 0);
      const cash = acct('ty:cash2', 'asset');
      await ledger.post(db, entry([dr(cash, 10), cr(wallet, 10)]));
      await assert.rejects(
        ledger.post(db, entry([dr(acct('ty:wallet', 'liability', -100), 1), cr(cash, 1)])),
        isAppError('conflict', /floor/),
      );
      await assert.rejects(
        ledger.post(db, entry([dr(acct('ty:wallet', 'liability', null), 1), cr(cash, 1)])),
        isAppError('conflict', /floor/),
      );
      // Without a floor in the spec, the account's own floor still applies.
      await assert.rejects(
        ledger.post(db, entry([dr(acct('ty:wallet', 'liability'), 11), cr(cash, 11)])),
        isAppError('insufficient_funds'),
      );
      await ledger.post(db, entry([dr(acct('ty:wallet', 'liability'), 10), cr(cash, 10)]));
      assert.equal(await ledger.balance(db, 'ty:wallet'), 0);
    });

    test('the same code in two books may have two types', async () => {
      await ledger.post(db, entry([dr(acct('ty:x', 'asset'), 1), cr(acct('ty:y', 'liability'), 1)]));
      await ledger.post(db, entry([dr(acct('ty:y', 'expense'), 1), cr(acct('ty:x', 'liability'), 1)], { book: 'PTS' }));
      assert.equal(await ledger.balance(db, 'ty:x', 'PTS'), 1);
    });
  });

  describe('floors', () => {
    test('a post that would breach a floor throws insufficient_funds and the whole caller tx rolls back', async () => {
      const wallet = acct('f1:wallet', 'liability', 0);
      const cash = acct('f1:cash', 'asset');
      const shop = acct('f1:shop', 'liability');
      await ledger.post(db, entry([dr(cash, 1_000), cr(wallet, 1_000)]));
      const before = [await count(db, 'entries'), await count(db, 'postings')];

      await assert.rejects(
        db.tx(async (tx) => {
          // Earlier work of the same business event: must not survive.
          await tx.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ('f1', 'k', '{}')`);
          await ledger.post(tx, entry([dr(wallet, 600), cr(shop, 600)]));
          await ledger.post(tx, entry([dr(wallet, 600), cr(shop, 600)]));
        }),
        (e) => {
          isAppError('insufficient_funds', /f1:wallet would fall below its floor/)(e);
          assert.equal((e as AppError).status, 409);
          assert.deepEqual((e as AppError).details, {
            book: 'INR',
            account: 'f1:wallet',
            kind: 'test.entry',
            reference: ((e as AppError).details as { reference: string }).reference,
          });
          return true;
        },
      );
      assert.equal(await ledger.balance(db, 'f1:wallet'), 1_000);
      assert.equal(await ledger.balance(db, 'f1:shop'), 0);
      assert.deepEqual([await count(db, 'entries'), await count(db, 'postings')], before);
      const outbox = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM platform.outbox WHERE topic = 'f1'`);
      assert.equal(outbox.rows[0].n, 0);
      assert.deepEqual(await ledger.verify(db), []);
    });

    test('reaching the floor exactly is allowed; one more is not', async () => {
      const wallet = acct('f2:wallet', 'liability', 0);
      const cash = acct('f2:cash', 'asset');
      await ledger.post(db, entry([dr(cash, 50), cr(wallet, 50)]));
      await ledger.post(db, entry([dr(wallet, 50), cr(cash, 50)]));
      assert.equal(await ledger.balance(db, 'f2:wallet'), 0);
      await assert.rejects(ledger.post(db, entry([dr(wallet, 1), cr(cash, 1)])), isAppError('insufficient_funds'));
    });

    test('a negative floor is an overdraft limit, on the normal side of any account type', async () => {
      const till = acct('f3:till', 'asset', -100);
      const sales = acct('f3:sales', 'revenue');
      await ledger.post(db, entry([dr(sales, 100), cr(till, 100)]));
      assert.equal(await ledger.balance(db, 'f3:till'), -100);
      await assert.rejects(
        ledger.post(db, entry([dr(sales, 1), cr(till, 1)])),
        isAppError('insufficient_funds', /f3:till/),
      );
      // A credit-normal account with a floor is breached by debits.
      const points = acct('f3:points', 'liability', 0);
      await assert.rejects(
        ledger.post(db, entry([dr(points, 1), cr(acct('f3:issued', 'expense'), 1)], { book: 'PTS' })),
        isAppError('insufficient_funds', /PTS\/f3:points/),
      );
    });

    test('a new account with floor 0 cannot start below it', async () => {
      await assert.rejects(
        ledger.post(db, entry([dr(acct('f4:new-wallet', 'liability', 0), 1), cr(acct('f4:cash', 'asset'), 1)])),
        isAppError('insufficient_funds'),
      );
      assert.equal(await ledger.balance(db, 'f4:new-wallet'), 0);
    });

    test('a caller that swallows insufficient_funds still cannot commit half an entry', async () => {
      const wallet = acct('f5:wallet', 'liability', 0);
      const cash = acct('f5:cash', 'asset');
      await ledger.post(db, entry([dr(cash, 10), cr(wallet, 10)]));
      const before = [await count(db, 'entries'), await count(db, 'postings')];
      // The breach is raised by PostgreSQL inside the statement, so the transaction is aborted:
      // committing it rolls back (pg) or throws (PGlite); either way nothing is kept.
      await db
        .tx(async (tx) => {
          await tx.query(`INSERT INTO platform.outbox (topic, key, payload) VALUES ('f5', 'k', '{}')`);
          await ledger.post(tx, entry([dr(wallet, 11), cr(cash, 11)])).catch(() => undefined);
        })
        .catch(() => undefined);
      assert.deepEqual([await count(db, 'entries'), await count(db, 'postings')], before);
      assert.equal(await ledger.balance(db, 'f5:wallet'), 10);
      const outbox = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM platform.outbox WHERE topic = 'f5'`);
      assert.equal(outbox.rows[0].n, 0);
    });
  });
});

function flip(l: EntryLine): EntryLine {
  return l.debit !== undefined ? { account: l.account, credit: l.debit } : { account: l.account, debit: l.credit };
}
