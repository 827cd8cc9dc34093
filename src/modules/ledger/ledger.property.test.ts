import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AppError } from '../../platform/errors.ts';
import { useTestDb } from '../../platform/testing.ts';
import { createLedgerService, type AccountSpec, type EntryInput, type EntryLine } from './index.ts';
import { normalSign } from './validate.ts';
import { postedBalance } from './testkit.ts';

// Random sequences of entries against a model of the balances: whatever the sequence, the
// ledger agrees with the model, every rejected entry left no trace, and verify() finds nothing.
// One database is shared by all runs; each run has its own accounts and references.

const ledger = createLedgerService();

// A handful of accounts: some with floors (0, or an overdraft), of every type.
const ACCOUNTS = [
  { key: 'cash', type: 'asset', floor: undefined },
  { key: 'bank', type: 'asset', floor: -500 },
  { key: 'wallet', type: 'liability', floor: 0 },
  { key: 'payable', type: 'liability', floor: 0 },
  { key: 'capital', type: 'equity', floor: undefined },
  { key: 'fees', type: 'revenue', floor: undefined },
  { key: 'costs', type: 'expense', floor: 0 },
] as const;

type Op =
  | { op: 'post'; debits: [number, number][]; credits: [number, number][] }
  | { op: 'unbalanced'; debits: [number, number][]; credits: [number, number][] }
  | { op: 'repeat'; pick: number }
  | { op: 'pair'; a: Op & { op: 'post' }; b: Op & { op: 'post' } };

const side = fc.array(fc.tuple(fc.nat({ max: ACCOUNTS.length - 1 }), fc.integer({ min: 1, max: 400 })), {
  minLength: 1,
  maxLength: 3,
});
const postOp = fc.record({ debits: side, credits: side }).map((s) => ({ op: 'post' as const, ...s }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: postOp },
  {
    weight: 1,
    arbitrary: fc.record({ debits: side, credits: side }).map((s) => ({ op: 'unbalanced' as const, ...s })),
  },
  { weight: 1, arbitrary: fc.nat({ max: 50 }).map((pick) => ({ op: 'repeat' as const, pick })) },
  { weight: 1, arbitrary: fc.record({ a: postOp, b: postOp }).map((p) => ({ op: 'pair' as const, ...p })) },
);

let run = 0;

describe('ledger properties', () => {
  const db = useTestDb();

  test('random entries: model agrees, rejects leave no trace, verify() is clean, postings total zero', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 15 }), async (ops) => {
        const prefix = `p${run++}_${process.pid}`;
        const spec = (i: number): AccountSpec => {
          const a = ACCOUNTS[i];
          return a.floor === undefined
            ? { code: `${prefix}:${a.key}`, type: a.type }
            : { code: `${prefix}:${a.key}`, type: a.type, floor: a.floor };
        };
        const model = new Map<string, number>();
        const posted: EntryInput[] = [];
        let n = 0;

        // Balanced: the credits are rescaled to the debits' total (each credit line keeps >= 1).
        const build = (
          o: { debits: [number, number][]; credits: [number, number][] },
          balanced: boolean,
        ): EntryInput => {
          const lines: EntryLine[] = o.debits.map(([i, v]) => ({ account: spec(i), debit: v }));
          const total = o.debits.reduce((s, [, v]) => s + v, 0);
          let credits = o.credits.slice(0, Math.min(o.credits.length, total));
          if (balanced) {
            const weight = credits.reduce((s, [, v]) => s + v, 0);
            let left = total;
            credits = credits.map(([i, v], k) => {
              const share =
                k === credits.length - 1
                  ? left
                  : Math.max(1, Math.min(left - (credits.length - 1 - k), Math.floor((total * v) / weight)));
              left -= share;
              return [i, share];
            });
          } else if (credits.reduce((s, [, v]) => s + v, 0) === total) {
            credits = [...credits.slice(0, -1), [credits.at(-1)![0], credits.at(-1)![1] + 1]];
          }
          for (const [i, v] of credits) lines.push({ account: spec(i), credit: v });
          return { kind: 'prop.entry', reference: `${prefix}_${n++}`, lines };
        };

        /** The model's balances after `entries`, or null if one of them would breach a floor. */
        const apply = (entries: EntryInput[]): Map<string, number> | null => {
          const next = new Map(model);
          for (const e of entries) {
            for (const l of e.lines) {
              const signed = (l.debit ?? 0) - (l.credit ?? 0);
              next.set(l.account.code, (next.get(l.account.code) ?? 0) + normalSign(l.account.type) * signed);
            }
            for (const l of e.lines) {
              const floor = l.account.floor;
              if (floor !== undefined && floor !== null && next.get(l.account.code)! < floor) return null;
            }
          }
          return next;
        };

        const expectCommit = async (entries: EntryInput[]) => {
          const next = apply(entries);
          const attempt = db.tx(async (tx) => {
            for (const e of entries) assert.equal((await ledger.post(tx, e)).duplicate, false);
          });
          if (next) {
            await attempt;
            for (const [k, v] of next) model.set(k, v);
            posted.push(...entries);
          } else {
            await assert.rejects(attempt, (e) => e instanceof AppError && e.code === 'insufficient_funds');
          }
        };

        for (const o of ops) {
          if (o.op === 'post') await expectCommit([build(o, true)]);
          else if (o.op === 'pair') await expectCommit([build(o.a, true), build(o.b, true)]);
          else if (o.op === 'unbalanced') {
            await assert.rejects(
              db.tx((tx) => ledger.post(tx, build(o, false))),
              (e) => e instanceof AppError && e.code === 'validation_failed',
            );
          } else if (posted.length > 0) {
            const again = posted[o.pick % posted.length];
            const r = await db.tx((tx) => ledger.post(tx, again));
            assert.equal(r.duplicate, true);
          }
        }

        assert.deepEqual(await ledger.verify(db), []);
        for (let i = 0; i < ACCOUNTS.length; i++) {
          const code = spec(i).code;
          const stored = await ledger.balance(db, code);
          assert.equal(stored, model.get(code) ?? 0, `${code}: ledger vs model`);
          assert.equal(stored, await postedBalance(db, code), `${code}: stored vs postings`);
          const floor = ACCOUNTS[i].floor;
          if (floor !== undefined) assert.ok(stored >= floor, `${code} below its floor`);
        }
        const total = await db.query<{ total: string }>(
          'SELECT COALESCE(sum(amount), 0)::text AS total FROM ledger.postings',
        );
        assert.equal(total.rows[0].total, '0');
      }),
      { numRuns: 25 },
    );
  });
});
