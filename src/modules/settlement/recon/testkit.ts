import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Db, Queryable } from '../../../platform/db.ts';
import { fixedClock } from '../../../platform/clock.ts';
import { newId, txnRefFromPaymentId } from '../../../platform/ids.ts';
import { formatRupees } from '../../../platform/money.ts';
import { auditKeysFromSeed, createAuditWriter } from '../../audit/index.ts';
import { createReconService } from './recon.service.ts';
import type { ReversalRequests } from './types.ts';

// Test helpers: payments written straight into their table (reconciliation reads them, it does
// not take payments), the simulator bank's CSV, and a recording reversal port.

export interface SeededPayment {
  id: string;
  txnRef: string;
  bankRef: string;
  amount: number;
  at: Date;
}

let seq = 0;
export async function seedPayment(
  q: Queryable,
  p: { amount: number; at: Date; bank?: string; status?: string; flagged?: string; merchantId?: string },
): Promise<SeededPayment> {
  const id = newId('payment');
  const txnRef = txnRefFromPaymentId(id);
  const bankRef = String(100_000_000_000 + ++seq * 7919 + Math.floor(Math.random() * 1000));
  await q.query(
    `INSERT INTO payments.payments (id, txn_ref, merchant_id, store_id, terminal_id, method, amount, currency, status, bank_code,
                                   bank_ref, expires_at, needs_reconciliation, reconciliation_reason, created_at, updated_at, completed_at)
     VALUES ($1, $2, $3, 'sto_x', 'trm_x', 'upi_qr', $4, 'INR', $5, $6, $7, $8, $9, $10, $8, $8, $8)`,
    [
      id,
      txnRef,
      p.merchantId ?? 'mer_test',
      p.amount,
      p.status ?? 'succeeded',
      p.bank ?? 'SIMBANK',
      bankRef,
      p.at,
      Boolean(p.flagged),
      p.flagged ?? null,
    ],
  );
  return { id, txnRef, bankRef, amount: p.amount, at: p.at };
}

/** "DD-MM-YYYY HH:mm:ss" in IST, as the simbank file writes times. */
export function istStamp(d: Date): string {
  const t = new Date(d.getTime() + 330 * 60_000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(t.getUTCDate())}-${p(t.getUTCMonth() + 1)}-${t.getUTCFullYear()} ${p(t.getUTCHours())}:${p(t.getUTCMinutes())}:${p(t.getUTCSeconds())}`;
}

export interface CsvRow {
  txnRef: string;
  bankRef?: string;
  amount: number;
  dir?: 'CR' | 'DR';
  at: Date;
  narration?: string;
}
export function simbankCsv(rows: CsvRow[]): string {
  const out = ['TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION'];
  let total = 0;
  for (const r of rows) {
    out.push(
      `${r.txnRef},${r.bankRef ?? ''},${formatRupees(r.amount)},${r.dir ?? 'CR'},${istStamp(r.at)},${r.narration ?? 'UPI'}`,
    );
    total += r.amount;
  }
  out.push(`TOTAL,,${formatRupees(total)},,,`);
  return `${out.join('\n')}\n`;
}

export const source = (text: string) => () => Readable.from([Buffer.from(text, 'utf8')]);

export function recordingReversals(): ReversalRequests & { calls: Parameters<ReversalRequests['request']>[1][] } {
  const calls: Parameters<ReversalRequests['request']>[1][] = [];
  const byRef = new Map<string, string>();
  return {
    calls,
    async request(_tx, r) {
      const known = byRef.get(r.sourceRef);
      if (known) return { reversalId: known, created: false };
      calls.push(r);
      const id = `rev_${randomBytes(16).toString('hex')}`;
      byRef.set(r.sourceRef, id);
      return { reversalId: id, created: true };
    },
  };
}

export function reconForTest(db: Db, opts: { now?: Date; reversals?: ReversalRequests } = {}) {
  const clock = fixedClock(opts.now ?? new Date('2026-12-03T12:00:00Z'));
  const audit = createAuditWriter({ keys: auditKeysFromSeed(randomBytes(32)), clock });
  const reversals = opts.reversals ?? recordingReversals();
  return { recon: createReconService({ db, clock, audit, reversals }), clock, reversals };
}

export const OPERATOR_A = { type: 'operator' as const, id: 'opr_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' };
export const OPERATOR_B = { type: 'operator' as const, id: 'opr_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' };
