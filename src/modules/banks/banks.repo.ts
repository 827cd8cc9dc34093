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

// banks.bank_health: each process's view of each bank (health.ts), for `banks status`.

export interface BankHealthRow {
  code: string;
  instance: string;
  breaker: 'closed' | 'open' | 'half_open';
  calls: number;
  ok: number;
  declined: number;
  technical: number;
  success_rate: number | null;
  p95_ms: number | null;
  rule: string;
  weight: number | null;
  updated_at: Date | string;
}

export async function saveHealth(db: Queryable, rows: BankHealthRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO banks.bank_health (code, instance, breaker, calls, ok, declined, technical, success_rate, p95_ms, rule, weight, updated_at)
     SELECT code, instance, breaker, calls, ok, declined, technical, success_rate, p95_ms, rule, weight, updated_at
       FROM jsonb_to_recordset($1::jsonb) AS r(code text, instance text, breaker text, calls int, ok int, declined int,
            technical int, success_rate numeric, p95_ms int, rule text, weight numeric, updated_at timestamptz)
     ON CONFLICT (code, instance) DO UPDATE SET breaker = EXCLUDED.breaker, calls = EXCLUDED.calls, ok = EXCLUDED.ok,
       declined = EXCLUDED.declined, technical = EXCLUDED.technical, success_rate = EXCLUDED.success_rate,
       p95_ms = EXCLUDED.p95_ms, rule = EXCLUDED.rule, weight = EXCLUDED.weight, updated_at = EXCLUDED.updated_at`,
    [JSON.stringify(rows)],
  );
}

export async function listHealth(db: Queryable): Promise<BankHealthRow[]> {
  const r = await db.query<BankHealthRow>(
    `SELECT code, instance, breaker, calls, ok, declined, technical, success_rate::float8 AS success_rate, p95_ms, rule,
            weight::float8 AS weight, updated_at
       FROM banks.bank_health ORDER BY code, updated_at DESC`,
  );
  return r.rows;
}
