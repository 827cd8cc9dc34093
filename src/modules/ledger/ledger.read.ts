import type { Queryable } from '../../platform/db.ts';

// Read-only views of posted entries, for screens that show where a business event's money went
// (the console's payment timeline). Only the ledger module reads its tables; others call this.

export interface EntryView {
  id: string;
  book: string;
  kind: string;
  reference: string;
  memo: string | null;
  created_at: string;
  /** Debits positive, credits negative, in the book's unit (paise or points). */
  postings: { account: string; type: string; amount: number }[];
}

/** Every entry posted for these references (a payment id, its refund ids), oldest first. */
export async function entriesByReference(q: Queryable, references: readonly string[]): Promise<EntryView[]> {
  if (references.length === 0) return [];
  const rows = (
    await q.query<{
      id: string;
      book: string;
      kind: string;
      reference: string;
      memo: string | null;
      created_at: Date;
      line: number;
      code: string;
      type: string;
      amount: string;
    }>(
      `SELECT e.id, e.book, e.kind, e.reference, e.memo, e.created_at, p.line, a.code, a.type, p.amount
       FROM ledger.entries e JOIN ledger.postings p ON p.entry_id = e.id JOIN ledger.accounts a ON a.id = p.account_id
      WHERE e.reference = ANY($1::text[])
      ORDER BY e.created_at, e.id, p.line`,
      [references],
    )
  ).rows;
  const byId = new Map<string, EntryView>();
  for (const r of rows) {
    let e = byId.get(r.id);
    if (!e) {
      e = {
        id: r.id,
        book: r.book,
        kind: r.kind,
        reference: r.reference,
        memo: r.memo,
        created_at: new Date(r.created_at).toISOString(),
        postings: [],
      };
      byId.set(r.id, e);
    }
    e.postings.push({ account: r.code, type: r.type, amount: Number(r.amount) });
  }
  return [...byId.values()];
}
