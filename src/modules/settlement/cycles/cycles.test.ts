import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from '../../../platform/db.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { createTestDb } from '../../../platform/testing.ts';
import { createLedgerService } from '../../ledger/index.ts';
import { parseCutoffs, DEFAULT_CYCLE_CUTOFFS } from '../settlement.settings.ts';
import { createReversalsService } from '../reversals/reversals.service.ts';
import { emptySettlement, insertPayment, insertRefund, scriptedBank, silentLogger } from '../testkit.ts';
import { verifyAll } from '../testkit.ts';
import { cycleOf, lastEndedCycle, parseCycleKey } from './cycleKeys.ts';
import { createCyclesService, type BankFileTotals } from './cycles.service.ts';

const ledger = createLedgerService();
const cutoffs = parseCutoffs('09:00,15:00,21:00');

describe('settlement cycles', () => {
  let db: Db;
  before(async () => {
    db = await createTestDb();
  });
  beforeEach(() => emptySettlement(db));
  after(async () => {
    await db?.close();
  });

  test('cycle keys: YYYY-MM-DD-C<n> in IST; an instant after the last cut-off belongs to C1 of the next day', () => {
    assert.deepEqual(parseCutoffs(DEFAULT_CYCLE_CUTOFFS).length, 10);
    assert.throws(() => parseCutoffs('09:00,08:00'), /ascending/);
    assert.throws(() => parseCutoffs('9am'), /HH:MM/);
    // 08:59 IST on 3 Dec = 03:29 UTC.
    assert.equal(cycleOf(new Date('2026-12-03T03:29:00Z'), cutoffs).key, '2026-12-03-C1');
    assert.equal(cycleOf(new Date('2026-12-03T03:30:00Z'), cutoffs).key, '2026-12-03-C1', 'the cut-off is inclusive');
    assert.equal(cycleOf(new Date('2026-12-03T03:30:00.001Z'), cutoffs).key, '2026-12-03-C2');
    assert.equal(cycleOf(new Date('2026-12-03T15:31:00Z'), cutoffs).key, '2026-12-04-C1', '21:01 IST');
    const c1 = parseCycleKey('2026-12-04-C1', cutoffs)!;
    assert.equal(c1.startsAt.toISOString(), '2026-12-03T15:30:00.000Z');
    assert.equal(c1.endsAt.toISOString(), '2026-12-04T03:30:00.000Z');
    assert.equal(parseCycleKey('2026-12-04-C4', cutoffs), undefined);
    assert.equal(parseCycleKey('2026-02-30-C1', cutoffs), undefined);
    assert.equal(lastEndedCycle(new Date('2026-12-03T05:00:00Z'), cutoffs).key, '2026-12-03-C1');
  });

  test('close: expected per bank without a file (awaiting file), then the file matches; or differs: an exception', async () => {
    const clock = fixedClock('2026-12-03T10:00:00Z'); // 15:30 IST: C2 (09:00–15:00) has ended
    const files = new Map<string, { fileId: string; creditPaise: number; debitPaise: number; lines: number }>();
    const port: BankFileTotals = { forCycle: async (bank, key) => files.get(`${bank}/${key}`) ?? null };
    const svc = createCyclesService({
      db,
      clock,
      logger: silentLogger,
      cutoffs,
      bankCodes: ['SIMBANK', 'OTHERBANK'],
      files: port,
    });
    const m = 'mer_0000000000000000000000000000aaaa';
    const inC2 = new Date('2026-12-03T05:00:00Z'); // 10:30 IST
    const p1 = await insertPayment(db, { merchantId: m, amount: 10_000, status: 'succeeded', createdAt: inC2 });
    const p2 = await insertPayment(db, { merchantId: m, amount: 5_000, status: 'partially_refunded', createdAt: inC2 });
    await insertRefund(db, { paymentId: p2, amount: 1_000, completedAt: new Date('2026-12-03T06:00:00Z') });
    await insertPayment(db, {
      merchantId: m,
      amount: 7_000,
      status: 'succeeded',
      createdAt: new Date('2026-12-03T10:00:01Z'),
    }); // C3
    await insertPayment(db, { merchantId: m, amount: 9_000, status: 'failed', createdAt: inC2 });
    // A late success reversed within the cycle: its money came in and went back out.
    const late = await insertPayment(db, {
      merchantId: m,
      amount: 300,
      status: 'expired',
      createdAt: inC2,
      flag: 'success_after_close',
    });
    const rclock = fixedClock('2026-12-03T07:00:00Z');
    const rev = createReversalsService({
      db,
      ledger,
      banks: { connector: () => scriptedBank().connector },
      clock: rclock,
      logger: silentLogger,
      callbackUrl: () => 'http://127.0.0.1:1/cb',
    });
    await db.tx((tx) =>
      rev.requests.request(tx, { paymentId: late, amountPaise: 300, reason: 'late_success', sourceRef: 'r' }),
    );
    await rev.runReversals();
    await assert.rejects(svc.close('2026-12-03-C3'), { code: 'conflict' });
    await assert.rejects(svc.close('2026-12-03-X'), { code: 'validation_failed' });

    const first = await svc.close('2026-12-03-C2');
    assert.equal(first.closed_now, true);
    assert.equal(first.cycle.status, 'awaiting_file');
    const sim = first.cycle.banks.find((b) => b.bank_code === 'SIMBANK')!;
    assert.deepEqual(sim.expected, { credit: 10_000 + 5_000 + 300, debit: 1_000 + 300, lines: 5 });
    assert.equal(sim.file, null);
    assert.deepEqual(first.cycle.banks.find((b) => b.bank_code === 'OTHERBANK')!.expected, {
      credit: 0,
      debit: 0,
      lines: 0,
    });
    void p1;

    // The files arrive: SIMBANK's agrees, OTHERBANK's has a line we do not.
    files.set('SIMBANK/2026-12-03-C2', { fileId: 'rcf_1', creditPaise: 15_300, debitPaise: 1_300, lines: 5 });
    files.set('OTHERBANK/2026-12-03-C2', { fileId: 'rcf_2', creditPaise: 4_200, debitPaise: 0, lines: 1 });
    const again = await svc.close('2026-12-03-C2');
    assert.equal(again.closed_now, false);
    assert.equal(again.cycle.status, 'difference');
    assert.equal(again.cycle.banks.find((b) => b.bank_code === 'SIMBANK')!.status, 'matched');
    const other = again.cycle.banks.find((b) => b.bank_code === 'OTHERBANK')!;
    assert.deepEqual(other.difference, { credit: 4_200, debit: 0, lines: 1 });
    const exc = await svc.listExceptions({ limit: 10 });
    assert.equal(exc.data.length, 1);
    assert.equal(exc.data[0].bank_code, 'OTHERBANK');
    // Asked again, nothing changes: one exception, expectations fixed at close.
    await svc.close('2026-12-03-C2');
    assert.equal((await svc.listExceptions({ limit: 10 })).data.length, 1);
    const resolved = await svc.resolveException(exc.data[0].id, 'bank error, claimed back');
    assert.equal(resolved.status, 'resolved');
    await assert.rejects(svc.resolveException(exc.data[0].id, 'again'), { code: 'invalid_state_transition' });
    await verifyAll(db);
  });

  test('the worker closes each ended cycle once, catching up, and picks up files that arrive later', async () => {
    const clock = fixedClock('2026-12-03T05:00:00Z'); // 10:30 IST
    let file: { fileId: string; creditPaise: number; debitPaise: number; lines: number } | null = null;
    const mk = () =>
      createCyclesService({
        db,
        clock,
        logger: silentLogger,
        cutoffs,
        bankCodes: ['SIMBANK'],
        files: { forCycle: async (_b, key) => (key === '2026-12-03-C2' ? file : null) },
      });
    const [w1, w2] = [mk(), mk()];
    const n = await Promise.all([w1.runCycles(), w2.runCycles()]);
    assert.equal(n[0] + n[1], 1, 'fresh install: the last ended cycle only, closed once');
    assert.equal((await w1.list({ limit: 10 })).data[0].key, '2026-12-03-C1');
    clock.set('2026-12-04T04:00:00Z'); // 09:30 IST next day: C2, C3 of the 3rd and C1 of the 4th ended
    assert.equal(await w1.runCycles(), 3);
    assert.equal(await w2.runCycles(), 0);
    const page1 = await w1.list({ limit: 2 });
    assert.deepEqual(
      page1.data.map((c) => c.key),
      ['2026-12-04-C1', '2026-12-03-C3'],
    );
    const page2 = await w1.list({ limit: 2, before: page1.next_cursor! });
    assert.deepEqual(
      page2.data.map((c) => c.key),
      ['2026-12-03-C2', '2026-12-03-C1'],
    );
    file = { fileId: 'rcf_9', creditPaise: 0, debitPaise: 0, lines: 0 };
    await w1.runCycles();
    assert.equal((await w1.get('2026-12-03-C2')).status, 'matched');
  });

  test('changed cut-offs: an overlapping window is refused; the worker goes on from the next whole cycle', async () => {
    const clock = fixedClock('2026-12-03T10:00:00Z'); // 15:30 IST
    const mk = (c: number[]) =>
      createCyclesService({ db, clock, logger: silentLogger, cutoffs: c, bankCodes: ['SIMBANK'] });
    await mk(cutoffs).close('2026-12-03-C2'); // 09:00-15:00 IST
    const other = mk(parseCutoffs('12:00,18:00'));
    // 2026-12-03-C2 under the new cut-offs is (12:00, 18:00]: not ended; C1 is (18:00 the day before, 12:00].
    await assert.rejects(other.close('2026-12-03-C1'), { code: 'conflict' });
    clock.set('2026-12-04T07:00:00Z'); // 12:30 IST on the 4th
    await other.runCycles();
    const keys = (await other.list({ limit: 10 })).data.map((c) => c.key);
    // (15:00 IST 3rd, 18:00] would overlap C2 of the old cut-offs: skipped; the next whole one closes.
    assert.deepEqual(keys, ['2026-12-04-C1', '2026-12-03-C2']);
  });
});
