import { useState, type FormEvent } from 'react';
import { useInfiniteQuery } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { get, qs, type Page, type Payment } from '../api.ts';
import { DataTable, ErrorNote, LoadMore } from '../components/DataTable.tsx';
import { parseRupees, rupees, shortId, when } from '../format.ts';
import { Link } from '../router.tsx';

// Search payments with the API's own filters; the CSV export walks every page of the same filter.

const STATUSES = ['created', 'pending', 'succeeded', 'failed', 'expired', 'partially_refunded', 'refunded'];
interface Filter {
  merchant_id?: string;
  store_id?: string;
  terminal_id?: string;
  status?: string;
  created_from?: string;
  created_to?: string;
  payer_vpa?: string;
  min?: string;
  max?: string;
}

const col = createColumnHelper<Payment>();
const columns = [
  col.accessor('id', {
    header: 'Payment',
    cell: (c) => (
      <Link to={`/payments/${c.getValue()}`} className="mono">
        {shortId(c.getValue())}
      </Link>
    ),
  }),
  col.accessor('created_at', { header: 'Created', cell: (c) => when(c.getValue()) }),
  col.accessor('amount', { header: 'Amount', cell: (c) => rupees(c.getValue()) }),
  col.accessor('status', {
    header: 'Status',
    cell: (c) => <span className={`status s-${c.getValue()}`}>{c.getValue().replace('_', ' ')}</span>,
  }),
  col.accessor('method', { header: 'Method' }),
  col.accessor('terminal_id', {
    header: 'Terminal',
    cell: (c) => <span className="mono">{shortId(c.getValue())}</span>,
  }),
  col.accessor((p) => p.bank.code, { id: 'bank', header: 'Bank' }),
  col.accessor('payer_vpa', { header: 'Payer', cell: (c) => c.getValue() ?? '—' }),
];

function apiQuery(f: Filter) {
  return {
    merchant_id: f.merchant_id,
    store_id: f.store_id,
    terminal_id: f.terminal_id,
    status: f.status,
    payer_vpa: f.payer_vpa,
    created_from: f.created_from ? new Date(f.created_from).toISOString() : undefined,
    created_to: f.created_to ? new Date(f.created_to).toISOString() : undefined,
  };
}
// The API has no amount filter; the range applies to the rows the other filters return.
function inAmountRange(f: Filter) {
  const min = f.min ? parseRupees(f.min) : undefined;
  const max = f.max ? parseRupees(f.max) : undefined;
  return (p: Payment) => (min === undefined || p.amount >= min) && (max === undefined || p.amount <= max);
}

const CSV_HEAD = [
  'id',
  'created_at',
  'completed_at',
  'status',
  'method',
  'amount_paise',
  'refunded_paise',
  'currency',
  'merchant_id',
  'store_id',
  'terminal_id',
  'bank',
  'bank_ref',
  'response_code',
  'payer_vpa_masked',
  'needs_reconciliation',
];
const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  // Quote, and neutralise a leading formula character so a spreadsheet never runs a cell.
  const safe = /^[=+\-@\t\r]/.test(s) ? "'" + s : s;
  return `"${safe.replaceAll('"', '""')}"`;
};
export function toCsv(rows: Payment[]) {
  return (
    [
      CSV_HEAD.join(','),
      ...rows.map((p) =>
        [
          p.id,
          p.created_at,
          p.completed_at,
          p.status,
          p.method,
          p.amount,
          p.refunded_amount,
          p.currency,
          p.merchant_id,
          p.store_id,
          p.terminal_id,
          p.bank.code,
          p.bank.ref,
          p.bank.response_code,
          p.payer_vpa,
          p.needs_reconciliation,
        ]
          .map(csvCell)
          .join(','),
      ),
    ].join('\r\n') + '\r\n'
  );
}

export function Payments() {
  const [draft, setDraft] = useState<Filter>({});
  const [filter, setFilter] = useState<Filter>({});
  const [exporting, setExporting] = useState<string>();
  const list = useInfiniteQuery({
    queryKey: ['payments', apiQuery(filter)],
    queryFn: ({ pageParam }) =>
      get<Page<Payment>>('/v1/payments' + qs({ ...apiQuery(filter), limit: 50, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    refetchInterval: 15_000,
  });
  const rows = (list.data?.pages.flatMap((p) => p.data) ?? []).filter(inAmountRange(filter));
  const field = (k: keyof Filter) => ({
    value: draft[k] ?? '',
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value }),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilter(draft);
  };

  async function exportCsv() {
    setExporting('Exporting…');
    const all: Payment[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await get<Page<Payment>>('/v1/payments' + qs({ ...apiQuery(filter), limit: 200, cursor }));
        all.push(...page.data);
        cursor = page.next_cursor ?? undefined;
        setExporting(`Exporting… ${all.length}`);
      } while (cursor && all.length < 100_000);
      const blob = new Blob([toCsv(all.filter(inAmountRange(filter)))], { type: 'text/csv;charset=utf-8' });
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `payments-${new Date().toISOString().slice(0, 19).replaceAll(':', '')}.csv`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      setExporting(undefined);
    } catch (e) {
      setExporting(`Export failed: ${(e as Error).message}`);
    }
  }

  return (
    <section aria-labelledby="pay">
      <h1 id="pay">Payments</h1>
      <form className="filters" onSubmit={submit} aria-label="Filter payments">
        <label>
          Status
          <select {...field('status')}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Merchant
          <input placeholder="mer_…" {...field('merchant_id')} />
        </label>
        <label>
          Store
          <input placeholder="sto_…" {...field('store_id')} />
        </label>
        <label>
          Terminal
          <input placeholder="trm_…" {...field('terminal_id')} />
        </label>
        <label>
          Payer VPA (exact)
          <input placeholder="name@bank" {...field('payer_vpa')} />
        </label>
        <label>
          From
          <input type="datetime-local" {...field('created_from')} />
        </label>
        <label>
          To
          <input type="datetime-local" {...field('created_to')} />
        </label>
        <label>
          Min ₹<input inputMode="decimal" {...field('min')} />
        </label>
        <label>
          Max ₹<input inputMode="decimal" {...field('max')} />
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
          <button
            type="button"
            className="secondary"
            onClick={exportCsv}
            disabled={!!exporting && exporting.startsWith('Exporting')}
          >
            Export CSV
          </button>
        </div>
      </form>
      {exporting && (
        <p role="status" className="small">
          {exporting}
        </p>
      )}
      <ErrorNote error={list.error} />
      <DataTable
        data={rows}
        columns={columns}
        caption="Payments, newest first"
        empty={list.isPending ? 'Loading…' : 'No payments match.'}
      />
      <LoadMore q={list} />
    </section>
  );
}
