import { useState, type FormEvent } from 'react';
import { useInfiniteQuery } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { get, qs, type Page } from '../api.ts';
import { DataTable, ErrorNote, LoadMore } from '../components/DataTable.tsx';
import { Deadline } from '../components/Deadline.tsx';
import { rupees, shortId, when } from '../format.ts';
import { Link } from '../router.tsx';

// Settlement, read from /v1/settlement: cycles per bank (what we expected against what the bank's
// file said, and the difference), payouts to merchants and their states, and reversals to
// customers against the RBI's deadline. Three views under one page: /settlement (cycles),
// /settlement/payouts and /settlement/reversals.

interface Totals {
  credit: number;
  debit: number;
  lines: number;
}
interface Cycle {
  key: string;
  starts_at: string;
  ends_at: string;
  closed_at: string;
  status: string;
  banks: {
    bank_code: string;
    status: string;
    expected: Totals;
    file: (Totals & { id: string }) | null;
    difference: Totals | null;
    checked_at: string;
  }[];
}
interface CycleRow extends Omit<Cycle, 'banks'> {
  bank: Cycle['banks'][number];
}
interface CycleException {
  id: string;
  cycle_key: string;
  bank_code: string;
  difference: Totals;
  status: string;
  resolution: string | null;
  created_at: string;
}
interface Payout {
  id: string;
  merchant_id: string;
  cycle_key: string;
  bank_code: string;
  payments: number;
  payments_count: number;
  refunds: number;
  reversals: number;
  fees: number;
  carried: number;
  held: number;
  net: number;
  status: string;
  due_at: string;
  batch_id: string | null;
  bank_ref: string | null;
  return_reason: string | null;
}
interface Reversal {
  id: string;
  payment_id: string;
  merchant_id: string;
  bank_code: string;
  reason: string;
  amount: number;
  debited_amount: number;
  status: string;
  transaction_date: string;
  deadline_at: string;
  overdue: boolean;
  attempts: number;
  compensation_days: number;
  created_at: string;
  completed_at: string | null;
}

const VIEWS = [
  { path: '/settlement', label: 'Cycles' },
  { path: '/settlement/payouts', label: 'Payouts' },
  { path: '/settlement/reversals', label: 'Reversals' },
];

export default function Settlement({ path }: { path: string }) {
  const view = VIEWS.find((v) => v.path === path) ?? VIEWS[0];
  return (
    <section aria-labelledby="st">
      <h1 id="st">Settlement</h1>
      <nav aria-label="Settlement views">
        <ul className="subnav">
          {VIEWS.map((v) => (
            <li key={v.path}>
              <Link to={v.path} aria-current={v === view ? 'page' : undefined}>
                {v.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      {view.path === '/settlement' && <Cycles />}
      {view.path === '/settlement/payouts' && <Payouts />}
      {view.path === '/settlement/reversals' && <Reversals />}
    </section>
  );
}

/** A signed amount of a difference (file − expected): zero is plain, anything else is flagged in words too. */
function Diff({ v, money = true }: { v: number | undefined; money?: boolean }) {
  if (v === undefined) return <>—</>;
  const text = money ? rupees(v) : String(v);
  return v === 0 ? text : <span className="diff-nonzero">{v > 0 ? `+${text}` : text}</span>;
}

function useList<T>(key: unknown[], path: string, params: Record<string, string | undefined>, limit = 50) {
  return useInfiniteQuery({
    queryKey: [...key, params],
    queryFn: ({ pageParam }) => get<Page<T>>(path + qs({ ...params, limit, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (l) => l.next_cursor ?? undefined,
    refetchInterval: 30_000,
  });
}

function Cycles() {
  const [bank, setBank] = useState('');
  const cycles = useList<Cycle>(['settlement-cycles'], '/v1/settlement/cycles', {}, 20);
  const open = useList<CycleException>(['settlement-cycle-exceptions'], '/v1/settlement/cycle-exceptions', {
    status: 'open',
  });
  const all = cycles.data?.pages.flatMap((p) => p.data) ?? [];
  const banks = [...new Set(all.flatMap((c) => c.banks.map((b) => b.bank_code)))].sort();
  const rows: CycleRow[] = all.flatMap((c) =>
    c.banks.filter((b) => !bank || b.bank_code === bank).map((b) => ({ ...c, bank: b })),
  );
  const col = createColumnHelper<CycleRow>();
  const columns = [
    col.accessor('key', { header: 'Cycle', cell: (c) => <span className="mono">{c.getValue()}</span> }),
    col.accessor('ends_at', { header: 'Cut-off', cell: (c) => when(c.getValue()) }),
    col.accessor((r) => r.bank.bank_code, { id: 'bank', header: 'Bank' }),
    col.accessor((r) => r.bank.status, {
      id: 'status',
      header: 'Status',
      cell: (c) => <span className={`status s-${c.getValue()}`}>{c.getValue().replace('_', ' ')}</span>,
    }),
    col.accessor((r) => r.bank.expected.credit, {
      id: 'exp_credit',
      header: 'Expected credit',
      cell: (c) => rupees(c.getValue()),
    }),
    col.accessor((r) => r.bank.file?.credit, {
      id: 'file_credit',
      header: 'Bank credit',
      cell: (c) => (c.getValue() === undefined ? '—' : rupees(c.getValue()!)),
    }),
    col.accessor((r) => r.bank.difference?.credit, {
      id: 'diff_credit',
      header: 'Credit difference',
      cell: (c) => <Diff v={c.getValue()} />,
    }),
    col.accessor((r) => r.bank.expected.debit, {
      id: 'exp_debit',
      header: 'Expected debit',
      cell: (c) => rupees(c.getValue()),
    }),
    col.accessor((r) => r.bank.file?.debit, {
      id: 'file_debit',
      header: 'Bank debit',
      cell: (c) => (c.getValue() === undefined ? '—' : rupees(c.getValue()!)),
    }),
    col.accessor((r) => r.bank.difference?.debit, {
      id: 'diff_debit',
      header: 'Debit difference',
      cell: (c) => <Diff v={c.getValue()} />,
    }),
    col.accessor((r) => `${r.bank.expected.lines} / ${r.bank.file ? r.bank.file.lines : '—'}`, {
      id: 'lines',
      header: 'Lines (ours / bank)',
    }),
  ];
  const exCol = createColumnHelper<CycleException>();
  const exColumns = [
    exCol.accessor('cycle_key', { header: 'Cycle', cell: (c) => <span className="mono">{c.getValue()}</span> }),
    exCol.accessor('bank_code', { header: 'Bank' }),
    exCol.accessor((r) => r.difference.credit, {
      id: 'credit',
      header: 'Credit difference',
      cell: (c) => <Diff v={c.getValue()} />,
    }),
    exCol.accessor((r) => r.difference.debit, {
      id: 'debit',
      header: 'Debit difference',
      cell: (c) => <Diff v={c.getValue()} />,
    }),
    exCol.accessor((r) => r.difference.lines, {
      id: 'lines',
      header: 'Lines difference',
      cell: (c) => <Diff v={c.getValue()} money={false} />,
    }),
    exCol.accessor('created_at', { header: 'Opened', cell: (c) => when(c.getValue()) }),
  ];
  return (
    <>
      <h2>Cycles per bank</h2>
      <p className="small muted">
        Expected is fixed when the cycle closes; the bank's figures come from its settlement file. A difference is the
        bank's file minus what we expected; its lines are in the reconciliation exception queue.
      </p>
      <div className="filters" role="group" aria-label="Filter cycles">
        <label>
          Bank
          <select value={bank} onChange={(e) => setBank(e.target.value)}>
            <option value="">every bank</option>
            {banks.map((b) => (
              <option key={b}>{b}</option>
            ))}
          </select>
        </label>
      </div>
      <ErrorNote error={cycles.error} />
      <DataTable
        data={rows}
        columns={columns}
        caption="Settlement cycles per bank, newest first"
        empty={cycles.isPending ? 'Loading…' : 'No closed cycles yet.'}
      />
      <LoadMore q={cycles} what="cycles" />
      <h2>Open cycle differences</h2>
      <ErrorNote error={open.error} />
      <DataTable
        data={open.data?.pages.flatMap((p) => p.data) ?? []}
        columns={exColumns}
        caption="Open differences between a cycle and a bank file"
        empty={open.isPending ? 'Loading…' : 'No open differences.'}
      />
      <LoadMore q={open} what="differences" />
    </>
  );
}

const PAYOUT_STATUSES = ['scheduled', 'held', 'nothing_due', 'sent', 'paid', 'returned'];

function Payouts() {
  const [draft, setDraft] = useState<Record<string, string>>({});
  const [filter, setFilter] = useState<Record<string, string>>({});
  const list = useList<Payout>(['settlement-payouts'], '/v1/settlement/payouts', filter);
  const col = createColumnHelper<Payout>();
  const money = (k: 'payments' | 'refunds' | 'reversals' | 'fees' | 'carried' | 'held' | 'net', header: string) =>
    col.accessor(k, { header, cell: (c) => rupees(c.getValue()) });
  const columns = [
    col.accessor('id', {
      header: 'Payout',
      cell: (c) => (
        <span className="mono" title={c.getValue()}>
          {shortId(c.getValue())}
        </span>
      ),
    }),
    col.accessor('merchant_id', {
      header: 'Merchant',
      cell: (c) => <span className="mono">{shortId(c.getValue())}</span>,
    }),
    col.accessor('cycle_key', { header: 'Cycle', cell: (c) => <span className="mono">{c.getValue()}</span> }),
    col.accessor('payments', {
      header: 'Payments',
      cell: (c) => `${rupees(c.getValue())} (${c.row.original.payments_count})`,
    }),
    money('refunds', 'Refunds'),
    money('reversals', 'Reversals'),
    money('fees', 'Fees'),
    money('carried', 'Carried'),
    money('held', 'Held'),
    money('net', 'Net'),
    col.accessor('status', {
      header: 'Status',
      cell: (c) => <span className={`status s-${c.getValue()}`}>{c.getValue().replace('_', ' ')}</span>,
    }),
    col.accessor('due_at', { header: 'Due', cell: (c) => when(c.getValue()) }),
    col.accessor((p) => p.bank_ref ?? p.return_reason ?? '', {
      id: 'bank',
      header: 'Bank reference or return',
      cell: (c) => c.getValue() || '—',
    }),
  ];
  const field = (k: string) => ({
    value: draft[k] ?? '',
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value }),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilter(
      Object.fromEntries(
        Object.entries(draft)
          .filter(([, v]) => v.trim())
          .map(([k, v]) => [k, v.trim()]),
      ),
    );
  };
  return (
    <>
      <h2>Payouts to merchants</h2>
      <p className="small muted">
        Net = payments − refunds − reversals charged to the merchant − fees + carried − held. Held payouts wait for a
        review or a disputed amount; a returned one is carried into the next.
      </p>
      <form className="filters" onSubmit={submit} aria-label="Filter payouts">
        <label>
          Status
          <select {...field('status')}>
            <option value="">any</option>
            {PAYOUT_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace('_', ' ')}
              </option>
            ))}
          </select>
        </label>
        <label>
          Merchant
          <input placeholder="mer_…" {...field('merchant_id')} />
        </label>
        <label>
          Cycle
          <input placeholder="2026-12-03-C1" {...field('cycle_key')} />
        </label>
        <div className="filter-actions">
          <button type="submit">Search</button>
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setDraft({});
              setFilter({});
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <ErrorNote error={list.error} />
      <DataTable
        data={list.data?.pages.flatMap((p) => p.data) ?? []}
        columns={columns}
        caption="Payouts, newest first"
        empty={list.isPending ? 'Loading…' : 'No payouts match.'}
      />
      <LoadMore q={list} what="payouts" />
    </>
  );
}

function Reversals() {
  const [status, setStatus] = useState('');
  const [overdue, setOverdue] = useState(false);
  const list = useList<Reversal>(['settlement-reversals'], '/v1/settlement/reversals', {
    status: status || undefined,
    overdue: overdue ? 'true' : undefined,
  });
  const now = Date.now();
  const col = createColumnHelper<Reversal>();
  const columns = [
    col.accessor('id', {
      header: 'Reversal',
      cell: (c) => (
        <span className="mono" title={c.getValue()}>
          {shortId(c.getValue())}
        </span>
      ),
    }),
    col.accessor('payment_id', {
      header: 'Payment',
      cell: (c) => (
        <Link to={`/payments/${c.getValue()}`} className="mono">
          {shortId(c.getValue())}
        </Link>
      ),
    }),
    col.accessor('bank_code', { header: 'Bank' }),
    col.accessor('reason', { header: 'Reason', cell: (c) => c.getValue().replace('_', ' ') }),
    col.accessor('amount', { header: 'Amount', cell: (c) => rupees(c.getValue()) }),
    col.accessor('status', {
      header: 'Status',
      cell: (c) => <span className={`status s-${c.getValue()}`}>{c.getValue()}</span>,
    }),
    col.accessor('transaction_date', { header: 'T (IST)' }),
    col.accessor('deadline_at', {
      header: 'Deadline',
      cell: (c) => {
        const r = c.row.original;
        // The server says whether it is overdue (its clock); the time left is only for reading.
        const left = Math.round((Date.parse(r.deadline_at) - now) / 1000);
        return (
          <span data-overdue={r.overdue ? '1' : '0'}>
            {when(r.deadline_at)}{' '}
            {r.status === 'succeeded' ? (
              <Deadline
                at={r.deadline_at}
                secondsLeft={left}
                done={{ at: r.completed_at, inTime: r.compensation_days === 0 }}
              />
            ) : r.overdue ? (
              <span className="late">overdue</span>
            ) : (
              <Deadline at={r.deadline_at} secondsLeft={Math.max(1, left)} />
            )}
          </span>
        );
      },
    }),
    col.accessor('compensation_days', { header: 'Compensation days' }),
    col.accessor('attempts', { header: 'Attempts' }),
    col.accessor('created_at', { header: 'Requested', cell: (c) => when(c.getValue()) }),
  ];
  return (
    <>
      <h2>Reversals to customers</h2>
      <p className="small muted">
        A customer debited for a payment that did not complete is paid back by the end of T + 5 days (RBI/2019-20/67);
        past it, ₹100 a day of delay is owed.
      </p>
      <div className="filters" role="group" aria-label="Filter reversals">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            {['scheduled', 'pending', 'succeeded', 'failed'].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label className="check">
          <input type="checkbox" checked={overdue} onChange={(e) => setOverdue(e.target.checked)} />
          Overdue only
        </label>
      </div>
      <ErrorNote error={list.error} />
      <DataTable
        data={list.data?.pages.flatMap((p) => p.data) ?? []}
        columns={columns}
        caption="Reversals, newest first"
        empty={list.isPending ? 'Loading…' : 'No reversals match.'}
      />
      <LoadMore q={list} what="reversals" />
    </>
  );
}
