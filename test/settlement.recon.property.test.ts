import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createTestDb } from '../src/platform/testing.ts';
import type { Db } from '../src/platform/db.ts';
import {
  OPERATOR_A,
  reconForTest,
  seedPayment,
  simbankCsv,
  source,
  type CsvRow,
} from '../src/modules/settlement/recon/testkit.ts';

// Properties of matching over random files, and two ingests racing, on the test database.

let db: Db;
before(async () => {
  db = await createTestDb();
});
after(async () => {
  await db.close();
});

type Fate = 'exact' | 'twice' | 'over' | 'under' | 'omit';
let day = 0;
const cycleFile = () => {
  const d = new Date(Date.UTC(2027, 0, 1) + day++ * 86_400_000);
  return { name: `SIMBANK_SETTLEMENT_${d.toISOString().slice(0, 10).replaceAll('-', '')}_C1.csv`, base: d };
};

test('every line ends in exactly one outcome; matched amounts sum to the file total; no item is matched twice', async () => {
  const { recon } = reconForTest(db);
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          amount: fc.integer({ min: 1, max: 5_000_000 }),
          closed: fc.boolean(),
          fate: fc.constantFrom<Fate>('exact', 'twice', 'over', 'under', 'omit'),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      // At least one line we do not have (unique to its day), so no two files are the same bytes:
      // two header-only files would be one file to recon (it deduplicates by content).
      fc.integer({ min: 1, max: 3 }),
      async (items, extras) => {
        const { name, base } = cycleFile();
        const rows: CsvRow[] = [];
        const expectMatched = new Set<string>();
        let i = 0;
        for (const it of items) {
          const at = new Date(base.getTime() + ++i * 60_000);
          const p = await seedPayment(db, { amount: it.amount, at, status: it.closed ? 'failed' : 'succeeded' });
          const line = { txnRef: p.txnRef, bankRef: p.bankRef, amount: it.amount, at };
          if (it.fate === 'omit') continue;
          if (it.fate === 'over') line.amount += 1;
          if (it.fate === 'under' && it.amount > 1) line.amount -= 1;
          rows.push(line);
          if (it.fate === 'twice') rows.push({ ...line });
          if (!it.closed && (it.fate === 'exact' || it.fate === 'twice' || (it.fate === 'under' && it.amount === 1)))
            expectMatched.add(p.id);
        }
        for (let k = 0; k < extras; k++)
          rows.push({ txnRef: `XTRA${day}N${k}`, amount: 100 + k, at: new Date(base.getTime() + 3_600_000) });
        // Shuffle-free but interleaved: the file order is the order above.
        const r = await recon.ingest({
          bankCode: 'SIMBANK',
          open: source(simbankCsv(rows)),
          fileName: name,
          actor: OPERATOR_A,
        });
        assert.equal(r.status, 'ingested');
        const lines = await db.query<{
          outcome: string | null;
          amount_paise: number;
          our_id: string | null;
          exception_id: string | null;
        }>('SELECT outcome, amount_paise, our_id, exception_id FROM settlement.recon_lines WHERE file_id = $1', [
          r.file_id,
        ]);
        assert.equal(lines.rows.length, rows.length);
        let matchedSum = 0;
        const matchedItems = new Set<string>();
        for (const l of lines.rows) {
          assert.ok(l.outcome, 'every line has an outcome');
          // Exactly one of: matched, or an exception of its own.
          assert.equal(l.outcome === 'matched', l.exception_id === null);
          if (l.outcome === 'matched') {
            matchedSum += l.amount_paise;
            assert.ok(l.our_id && !matchedItems.has(l.our_id), 'an item is matched by one line only');
            matchedItems.add(l.our_id!);
          }
        }
        const exc = await db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM settlement.recon_exceptions WHERE file_id = $1',
          [r.file_id],
        );
        assert.equal(exc.rows[0].n, lines.rows.filter((l) => l.outcome !== 'matched').length);
        assert.equal(matchedSum, r.matched_paise);
        // With no tolerance in the rules, the bank's matched total is our matched total.
        const ours = await db.query<{ s: number | null }>(
          "SELECT sum(amount_paise)::bigint AS s FROM settlement.recon_item_outcomes WHERE file_id = $1 AND outcome = 'matched'",
          [r.file_id],
        );
        assert.equal(Number(ours.rows[0].s ?? 0), matchedSum);
        assert.deepEqual([...matchedItems].sort(), [...expectMatched].sort());
        const sumOutcomes = Object.values(r.outcomes).reduce((a, b) => a + b, 0);
        assert.equal(sumOutcomes, rows.length);
      },
    ),
    { numRuns: 15 },
  );
  // Across all the files: no item of ours holds two outcomes (the table's key), and no item is
  // named as matched by two lines.
  const twice = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT our_id FROM settlement.recon_lines WHERE outcome = 'matched' AND our_id IS NOT NULL
      GROUP BY our_kind, our_id HAVING count(DISTINCT (file_id, match_group)) > 1) x`,
  );
  assert.equal(twice.rows[0].n, 0);
  // Lines and item outcomes keep no foreign key to their file (migration 0026): none names a
  // file that does not exist.
  const orphans = await db.query<{ n: number }>(
    `SELECT ((SELECT count(*) FROM settlement.recon_lines l
               WHERE NOT EXISTS (SELECT 1 FROM settlement.recon_files f WHERE f.id = l.file_id))
           + (SELECT count(*) FROM settlement.recon_item_outcomes x
               WHERE NOT EXISTS (SELECT 1 FROM settlement.recon_files f WHERE f.id = x.file_id)))::int AS n`,
  );
  assert.equal(orphans.rows[0].n, 0);
});

test('two ingests of the same file at once change things once; so do two files for one cycle', async () => {
  const { recon } = reconForTest(db);
  const { name, base } = cycleFile();
  const p = await seedPayment(db, { amount: 4_242, at: new Date(base.getTime() + 60_000) });
  const csv = simbankCsv([{ txnRef: p.txnRef, amount: 4_242, at: new Date(base.getTime() + 60_000) }]);
  const results = await Promise.all(
    [0, 1, 2].map(() => recon.ingest({ bankCode: 'SIMBANK', open: source(csv), fileName: name, actor: OPERATOR_A })),
  );
  assert.deepEqual(results.map((r) => r.status).sort(), ['already_ingested', 'already_ingested', 'ingested']);
  assert.equal(new Set(results.map((r) => r.file_id)).size, 1);
  const n = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM settlement.recon_lines WHERE file_id = $1', [
    results[0].file_id,
  ]);
  assert.equal(n.rows[0].n, 1);

  const other = cycleFile();
  const a = simbankCsv([{ txnRef: 'RACE1', amount: 1, at: other.base }]);
  const b = simbankCsv([{ txnRef: 'RACE2', amount: 2, at: other.base }]);
  const race = await Promise.all(
    [a, b].map((c) => recon.ingest({ bankCode: 'SIMBANK', open: source(c), fileName: other.name, actor: OPERATOR_A })),
  );
  assert.deepEqual(race.map((r) => r.status).sort(), ['cycle_already_processed', 'ingested']);
  const files = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM settlement.recon_files WHERE cycle_key = $1',
    [race[0].cycle_key],
  );
  assert.equal(files.rows[0].n, 1);
});
