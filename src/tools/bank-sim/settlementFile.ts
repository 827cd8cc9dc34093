import type { FastifyInstance } from 'fastify';
import { formatRupees } from '../../platform/money.ts';

// The simulated bank's settlement file for an NPCI cycle: every payment it approved, every
// refund it paid and every push credit it paid (settlement's compensation credits, listed like
// refunds: a debit of the merchant's account, with the credit's reference) in the cycle's time span, in the bank's own layout (SIMBANK: CSV in rupees
// with a DR/CR column; SIMBANK2: fixed width in signed paise). On request it gets the mistakes
// real files have, so reconciliation can be shown and tested end to end: a row missing, a row
// the bank has and we do not, an amount off by a paisa, a row twice, and a late success (a
// payment the bank had declined or let expire that it settles after all). The layouts are the
// ones src/modules/settlement/recon/mappings/ describes; docs/bank-simulator.md documents them.

export interface SettlementRecord {
  kind: 'payment' | 'refund' | 'credit';
  ref: string;
  bankRef: string;
  amountPaise: number;
  payeeVpa: string;
  at: Date;
  succeeded: boolean;
}

interface TxnLike {
  txnRef: string;
  bankRef: string;
  amountPaise: number;
  payeeVpa: string;
  responseCode: string;
  state: string;
  expiresAt: number;
  decidedAt?: number;
}
interface RefundLike {
  refundRef: string;
  originalTxnRef: string;
  amountPaise: number;
  responseCode: string;
  bankRef?: string;
  decidedAt?: number;
}

interface CreditLike {
  creditRef: string;
  bankRef: string;
  amountPaise: number;
  relatedTxnRef?: string;
  decidedAt: number;
}

export function settlementRecordsOf(
  txns: Iterable<TxnLike>,
  refunds: Iterable<RefundLike>,
  txnOf: (ref: string) => TxnLike | undefined,
  now = Date.now(),
  credits: Iterable<CreditLike> = [],
): SettlementRecord[] {
  const out: SettlementRecord[] = [];
  for (const t of txns) {
    // Nobody paid before expiry: closed at the bank (the engine marks it U69 only when asked).
    const expired = t.state !== 'final' && t.expiresAt <= now;
    if (!expired && (t.decidedAt === undefined || t.state !== 'final')) continue;
    out.push({
      kind: 'payment',
      ref: t.txnRef,
      bankRef: t.bankRef,
      amountPaise: t.amountPaise,
      payeeVpa: t.payeeVpa,
      at: new Date(expired ? t.expiresAt : (t.decidedAt as number)),
      succeeded: !expired && t.responseCode === '00',
    });
  }
  for (const r of refunds) {
    if (r.responseCode !== '00' || r.decidedAt === undefined) continue;
    out.push({
      kind: 'refund',
      ref: r.refundRef,
      bankRef: r.bankRef ?? '',
      amountPaise: r.amountPaise,
      payeeVpa: txnOf(r.originalTxnRef)?.payeeVpa ?? '',
      at: new Date(r.decidedAt),
      succeeded: true,
    });
  }
  for (const c of credits) {
    // Paid credits only (the book's settled()). Whose file it is in goes by the merchant of the
    // payment it relates to, as for a refund; a credit that names no payment is in no file.
    out.push({
      kind: 'credit',
      ref: c.creditRef,
      bankRef: c.bankRef,
      amountPaise: c.amountPaise,
      payeeVpa: c.relatedTxnRef ? (txnOf(c.relatedTxnRef)?.payeeVpa ?? '') : '',
      at: new Date(c.decidedAt),
      succeeded: true,
    });
  }
  return out.sort((a, b) => a.at.getTime() - b.at.getTime() || a.ref.localeCompare(b.ref));
}

export interface Discrepancies {
  missing?: number;
  extra?: number;
  amount_off?: number;
  duplicate?: number;
  late_success?: number;
}

export interface SettlementFileRequest {
  /** SIMBANK (CSV) or SIMBANK2 (fixed width). */
  bank: 'SIMBANK' | 'SIMBANK2';
  /** YYYY-MM-DD-C<n>: the IST date and number of the cycle. */
  cycleKey: string;
  /** The cycle's span; default: the whole IST day of the cycle key. */
  from?: Date;
  to?: Date;
  /** Payee VPAs of this handle only (the bank's merchants); default: the bank code in lower case. */
  payeeHandle?: string;
  discrepancies?: Discrepancies;
}

export interface SettlementFile {
  file_name: string;
  content: string;
  lines: number;
  /** What was done to the file, with the references involved, so a test can check each outcome. */
  applied: { missing: string[]; extra: string[]; amount_off: string[]; duplicate: string[]; late_success: string[] };
}

const CYCLE_RE = /^(\d{4})-(\d{2})-(\d{2})-C([1-9]\d?)$/;

export function writeSettlementFile(records: SettlementRecord[], req: SettlementFileRequest): SettlementFile {
  const m = CYCLE_RE.exec(req.cycleKey);
  if (!m) throw new RangeError('cycle must be YYYY-MM-DD-C<n>');
  const dayStart = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - 330 * 60_000; // IST midnight
  const from = req.from?.getTime() ?? dayStart;
  const to = req.to?.getTime() ?? dayStart + 86_400_000;
  const handle = `@${req.payeeHandle ?? req.bank.toLowerCase()}`;
  const inSpan = records.filter((r) => r.at.getTime() >= from && r.at.getTime() < to && r.payeeVpa.endsWith(handle));
  const d = req.discrepancies ?? {};
  const applied: SettlementFile['applied'] = {
    missing: [],
    extra: [],
    amount_off: [],
    duplicate: [],
    late_success: [],
  };
  type Row = { ref: string; bankRef: string; amount: number; debit: boolean; at: Date; text: string };
  let rows: Row[] = inSpan
    .filter((r) => r.succeeded)
    .map((r) => ({
      ref: r.ref,
      bankRef: r.bankRef,
      amount: r.amountPaise,
      debit: r.kind !== 'payment',
      at: r.at,
      text: r.kind === 'refund' ? 'UPI REFUND' : r.kind === 'credit' ? 'UPI PUSH CREDIT' : 'UPI COLLECTION',
    }));
  const credits = () => rows.filter((r) => !r.debit);
  for (const r of credits().slice(0, d.missing ?? 0)) applied.missing.push(r.ref);
  rows = rows.filter((r) => !applied.missing.includes(r.ref));
  for (const r of credits().slice(0, d.amount_off ?? 0)) {
    r.amount += 1;
    applied.amount_off.push(r.ref);
  }
  for (const r of credits()
    .filter((x) => !applied.amount_off.includes(x.ref))
    .slice(0, d.duplicate ?? 0)) {
    rows.push({ ...r });
    applied.duplicate.push(r.ref);
  }
  for (const r of inSpan.filter((x) => !x.succeeded && x.kind === 'payment').slice(0, d.late_success ?? 0)) {
    rows.push({
      ref: r.ref,
      bankRef: r.bankRef,
      amount: r.amountPaise,
      debit: false,
      at: new Date(to - 1000),
      text: 'UPI COLLECTION LATE',
    });
    applied.late_success.push(r.ref);
  }
  for (let i = 0; i < (d.extra ?? 0); i++) {
    const ref = `SIMX${m[1]}${m[2]}${m[3]}C${m[4]}N${i + 1}`;
    rows.push({
      ref,
      bankRef: String(900_000_000_000 + i),
      amount: 10_000 + i,
      debit: false,
      at: new Date(Math.max(from, to - 60_000)),
      text: 'UPI COLLECTION',
    });
    applied.extra.push(ref);
  }
  const ymd = `${m[1]}${m[2]}${m[3]}`;
  if (req.bank === 'SIMBANK') {
    const out = ['TXN_REF,RRN,AMOUNT,DR_CR,TXN_DATE,NARRATION'];
    let total = 0;
    for (const r of rows) {
      out.push(
        `${r.ref},${r.bankRef},${formatRupees(r.amount)},${r.debit ? 'DR' : 'CR'},${istStamp(r.at, 'dmy')},${r.text}`,
      );
      total += r.debit ? -r.amount : r.amount;
    }
    out.push(`TOTAL,,${formatRupees(Math.abs(total))},${total < 0 ? 'DR' : 'CR'},,`);
    return {
      file_name: `SIMBANK_SETTLEMENT_${ymd}_C${m[4]}.csv`,
      content: `${out.join('\n')}\n`,
      lines: rows.length,
      applied,
    };
  }
  const out = [`H SIMBANK2 CYCLE ${ymd} C${m[4]}`];
  for (const r of rows)
    out.push(
      `D${r.ref.padEnd(35)}${r.bankRef.padEnd(12)}${`${r.debit ? '-' : ''}${r.amount}`.padStart(15)}${istStamp(r.at, 'compact')}${r.text.padEnd(40)}`,
    );
  out.push(`T ${String(rows.length).padStart(6, '0')}`);
  return { file_name: `SIMBANK2_${ymd}_C${m[4]}.txt`, content: `${out.join('\n')}\n`, lines: rows.length, applied };
}

function istStamp(d: Date, style: 'dmy' | 'compact'): string {
  const t = new Date(d.getTime() + 330 * 60_000);
  const p = (n: number) => String(n).padStart(2, '0');
  const [Y, M, D, h, mi, s] = [
    t.getUTCFullYear(),
    p(t.getUTCMonth() + 1),
    p(t.getUTCDate()),
    p(t.getUTCHours()),
    p(t.getUTCMinutes()),
    p(t.getUTCSeconds()),
  ];
  return style === 'dmy' ? `${D}-${M}-${Y} ${h}:${mi}:${s}` : `${Y}${M}${D}${h}${mi}${s}`;
}

/** GET /v1/settlement-files: the file for a cycle, as JSON { file_name, content, lines, applied }. */
export function registerSettlementFileRoute(app: FastifyInstance, records: () => SettlementRecord[]) {
  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/settlement-files', async (req, reply) => {
    const q = req.query;
    const bank =
      q.bank === 'SIMBANK2' ? 'SIMBANK2' : q.bank === 'SIMBANK' || q.bank === undefined ? 'SIMBANK' : undefined;
    const n = (k: keyof Discrepancies) => {
      const v = q[k];
      if (v === undefined) return 0;
      return /^\d{1,4}$/.test(v) ? Number(v) : Number.NaN;
    };
    const disc: Discrepancies = {
      missing: n('missing'),
      extra: n('extra'),
      amount_off: n('amount_off'),
      duplicate: n('duplicate'),
      late_success: n('late_success'),
    };
    const time = (v: string | undefined) => (v === undefined ? undefined : new Date(v));
    const from = time(q.from);
    const to = time(q.to);
    if (
      !bank ||
      !q.cycle ||
      !CYCLE_RE.test(q.cycle) ||
      Object.values(disc).some((v) => Number.isNaN(v)) ||
      (from && Number.isNaN(from.getTime())) ||
      (to && Number.isNaN(to.getTime()))
    )
      return reply.code(400).send({
        error: {
          code: 'invalid_request',
          message:
            'need cycle=YYYY-MM-DD-C<n>; optional bank (SIMBANK|SIMBANK2), from, to (ISO), missing, extra, amount_off, duplicate, late_success (counts)',
        },
      });
    return writeSettlementFile(records(), {
      bank,
      cycleKey: q.cycle,
      from,
      to,
      payeeHandle: q.payee_handle,
      discrepancies: disc,
    });
  });
}
