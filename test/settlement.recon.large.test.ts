import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb } from '../src/platform/testing.ts';
import type { Db } from '../src/platform/db.ts';
import { formatRupees } from '../src/platform/money.ts';
import { istStamp, reconForTest, source } from '../src/modules/settlement/recon/testkit.ts';

// A file above the large-file threshold (10,000 lines) takes the path the benchmark measures:
// fresh statistics, no JIT, hash joins over the whole file, the first rule writing its lines
// and narrowing the open ones, classification by index look-ups. Same outcomes as the small
// files' path, counted exactly, on the test database (PGlite, or PostgreSQL in CI).

let db: Db;
before(async () => {
  db = await createTestDb();
});
after(async () => {
  await db.close();
});

test('a file of 12,001 lines: every line one outcome, counted exactly; again: nothing changes', async () => {
  const N = 12_001;
  const base = new Date('2027-03-01T03:30:00Z');
  await db.query(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status, bank_code,
                                   bank_ref, expires_at, created_at, updated_at, completed_at)
     SELECT 'pay_large' || lpad(i::text, 27, '0'), 'TL' || lpad(i::text, 20, '0'), 'mer_large' || (i % 7), 'sto_x', 'trm_x',
            'upi_qr', 100 + i, 'INR', 'succeeded', 'SIMBANK', (300000000000 + i)::text,
            $2::timestamptz + make_interval(secs => i * 0.05 + 300), $2::timestamptz + make_interval(secs => i * 0.05),
            $2::timestamptz + make_interval(secs => i * 0.05), $2::timestamptz + make_interval(secs => i * 0.05)
       FROM generate_series(1, $1::int) AS i`,
    [N, base],
  );
  const rows = ['TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION'];
  const want = { matched: 0, amount_mismatch: 0, duplicate: 0, unknown: 0 };
  let missing = 0;
  let matchedPaise = 0;
  for (let i = 1; i <= N; i++) {
    const at = istStamp(new Date(base.getTime() + i * 50));
    if (i % 1500 === 0) {
      missing++; // before the file's last line: an exception of its own
      continue;
    }
    const amount = 100 + i + (i % 1000 === 0 ? 1 : 0);
    const row = `TL${String(i).padStart(20, '0')},${300000000000 + i},${formatRupees(amount)},CR,${at},UPI`;
    rows.push(row);
    if (i % 1000 === 0) want.amount_mismatch++;
    else {
      want.matched++;
      matchedPaise += amount;
    }
    if (i % 2000 === 0) {
      rows.push(row);
      want.duplicate++;
    }
    if (i % 2500 === 0) {
      rows.push(`TLX${i},${900000000000 + i},${formatRupees(1000 + i)},CR,${at},UPI`);
      want.unknown++;
    }
  }
  rows.push('TOTAL,,0.00,CR,,');
  const content = `${rows.join('\n')}\n`;
  const lines = rows.length - 2;
  const { recon } = reconForTest(db, { now: new Date('2027-03-02T06:00:00Z') });
  const ingest = () =>
    recon.ingest({
      bankCode: 'SIMBANK',
      open: source(content),
      fileName: 'SIMBANK_SETTLEMENT_20270301_C1.csv',
      actor: { type: 'cli', id: 'test' },
    });
  const r = await ingest();
  assert.equal(r.status, 'ingested');
  assert.equal(r.lines, lines);
  assert.deepEqual(
    Object.fromEntries(Object.entries(r.outcomes).sort()),
    Object.fromEntries(Object.entries(want).sort()),
  );
  assert.deepEqual(r.matched_by_rule, { txn_ref_exact: want.matched });
  assert.equal(r.matched_paise, matchedPaise);
  assert.deepEqual(r.exceptions, {
    amount_over: want.amount_mismatch,
    duplicate: want.duplicate,
    missing,
    unknown: want.unknown,
  });
  const counts = async () =>
    (
      await db.query<{ lines: number; numbered: number; outcomes: number; matched_paise: string; items: number }>(
        `SELECT count(*)::int AS lines, count(DISTINCT line_no)::int AS numbered, count(outcome)::int AS outcomes,
                coalesce(sum(amount_paise) FILTER (WHERE outcome = 'matched'), 0)::text AS matched_paise,
                (SELECT count(*)::int FROM settlement.recon_item_outcomes WHERE file_id = $1) AS items
           FROM settlement.recon_lines WHERE file_id = $1`,
        [r.file_id],
      )
    ).rows[0];
  const stored = await counts();
  assert.deepEqual(stored, {
    lines,
    numbered: lines,
    outcomes: lines,
    matched_paise: String(matchedPaise),
    items: want.matched + want.amount_mismatch,
  });
  const again = await ingest();
  assert.equal(again.status, 'already_ingested');
  assert.equal(again.file_id, r.file_id);
  assert.deepEqual(await counts(), stored);
});
