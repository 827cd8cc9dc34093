import type { Queryable } from '../../platform/db.ts';

// SQL for banks.bank_status. A bank without a row is up.

export interface BankStatusRow {
  code: string;
  status: 'up' | 'down';
  reason: string | null;
  changed_at: Date | string;
}

export async function listStatuses(db: Queryable): Promise<BankStatusRow[]> {
  const r = await db.query<BankStatusRow>('SELECT code, status, reason, changed_at FROM banks.bank_status');
  return r.rows;
}

const DOWN_BANK_CODES_SQL = `SELECT code FROM banks.bank_status WHERE status = 'down'`;

/**
 * The codes of the banks marked down, as a query to embed in another module's statement: payments
 * reads it together with the terminal's context in the one round trip before every payment. A
 * deliberate exception to "SQL stays in its module" (docs/architecture.md, "Deliberate
 * exceptions"); everyone else asks the banks service.
 */
export const downBankCodesSql = (): string => DOWN_BANK_CODES_SQL;

export async function downCodes(db: Queryable): Promise<Set<string>> {
  const r = await db.query<{ code: string }>(DOWN_BANK_CODES_SQL);
  return new Set(r.rows.map((x) => x.code));
}

export async function setStatus(
  db: Queryable,
  code: string,
  status: 'up' | 'down',
  reason: string | null,
  at: Date,
): Promise<void> {
  await db.query(
    `INSERT INTO banks.bank_status (code, status, reason, changed_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (code) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at`,
    [code, status, reason, at.toISOString()],
  );
}
