import { useState, type FormEvent } from 'react';
import { useInfiniteQuery, useMutation, useQueryClient } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { ApiError, get, post, qs, type Page } from '../api.ts';
import { DataTable, ErrorNote, LoadMore } from '../components/DataTable.tsx';
import { Deadline, duration } from '../components/Deadline.tsx';
import { parseRupees, rupees, shortId, when } from '../format.ts';
import { Link } from '../router.tsx';
import { useCan, useSession } from '../session.tsx';

// The exception queue (GET /v1/recon/queue: each exception with its age and its deadline, the
// RBI's T + 5 days), resolved one at a time or in bulk (POST /v1/recon/exceptions/bulk-resolve,
// all or none). A forced match or a write-off waits for a second operator: it shows here as
// pending approval, with Approve and Reject for anyone but the operator who asked (the server
// refuses the requester anyway). Below it, the banks' files and the matching runs.

export interface QueueItem {
  id: string;
  kind: string;
  bank_code: string;
  cycle_key: string | null;
  file_id: string | null;
  line_no: number | null;
  payment_id: string | null;
  refund_id: string | null;
  amount_paise: number;
  expected_paise: number | null;
  detail: string;
  status: 'open' | 'pending_approval' | 'resolved';
  resolution: string | null;
  reason: string | null;
  requested_resolution: string | null;
  requested_by: string | null;
  resolved_by: string | null;
  approved_by: string | null;
  reversal_id: string | null;
  created_at: string;
  resolved_at: string | null;
  deadline_at: string;
  age_seconds: number;
  seconds_to_deadline: number;
  overdue: boolean;
}
interface ReconFile {
  id: string;
  bank_code: string;
  cycle_key: string;
  file_name: string | null;
  status: string;
  lines: number;
  credit_paise: number;
  debit_paise: number;
  matched_paise: number;
  outcomes: Record<string, number>;
  created_at: string;
}
interface Run {
  id: string;
  file_id: string;
  rules_id: string;
  counts: Record<string, Record<string, number>>;
  started_at: string;
  finished_at: string;
  run_by: string | null;
}

const KINDS = [
  'missing',
  'amount_over',
  'amount_under',
  'duplicate',
  'unknown',
  'late_success',
  'not_final',
  'flagged',
];
const RESOLUTIONS: [string, string][] = [
  ['accept', 'Accept as it is'],
  ['refund_customer', 'Refund the customer'],
  ['reverse', 'Reverse'],
  ['write_off', 'Write off (needs a second operator)'],
  ['match', 'Match to a payment (a forced match needs a second operator)'],
];
const label = (r: string | null) => RESOLUTIONS.find(([k]) => k === r)?.[1].replace(/ \(.*\)$/, '') ?? r ?? '—';
const AGES: [string, string][] = [
  ['', 'any'],
  ['1', 'older than 1 hour'],
  ['24', 'older than 1 day'],
  ['72', 'older than 3 days'],
];
const DEADLINES: [string, string][] = [
  ['', 'any'],
  ['overdue', 'overdue'],
  ['due_soon', 'due within 48 hours'],
  ['on_time', 'more than 48 hours left'],
];

interface Filter {
  bank_code?: string;
  kind?: string;
  status?: string;
  min_age_hours?: string;
  deadline?: string;
}

const errorText = (e: unknown) =>
  e instanceof ApiError ? `${e.message} (${e.code})` : String((e as Error)?.message ?? e);

export default function Reconciliation() {
  const can = useCan();
  const myId = useSession().operator.id;
  // Reconciliation records who acted as "operator:<id>" (or "api_key:<id>").
  const mine = (by: string | null) => by === myId || by === `operator:${myId}`;
  const whoShort = (by: string | null) => shortId((by ?? '').replace(/^operator:/, ''));
  const qc = useQueryClient();
  const [draft, setDraft] = useState<Filter>({ status: 'unresolved' });
  const [filter, setFilter] = useState<Filter>({ status: 'unresolved' });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [resolving, setResolving] = useState<QueueItem>();
  const [note, setNote] = useState<string>();
  const queue = useInfiniteQuery({
    queryKey: ['recon-queue', filter],
    queryFn: ({ pageParam }) =>
      get<Page<QueueItem>>('/v1/recon/queue' + qs({ ...filter, limit: 50, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (l) => l.next_cursor ?? undefined,
    refetchInterval: 15_000,
  });
  const rows = queue.data?.pages.flatMap((p) => p.data) ?? [];
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ['recon-queue'] });
    void qc.invalidateQueries({ queryKey: ['recon-aging'] });
  };
  const approve = useMutation({
    mutationFn: ({ id, decision }: { id: string; decision: 'approve' | 'reject' }) =>
      post<QueueItem>(`/v1/recon/exceptions/${id}/approve`, { decision }),
    onSuccess: (r, v) => {
      setNote(
        `${shortId(r.id)}: ${v.decision === 'approve' ? `approved, ${label(r.resolution)}` : 'rejected, open again'}`,
      );
      refresh();
    },
    onError: (e) => setNote(errorText(e)),
  });

  const selectable = (e: QueueItem) => e.status === 'open';
  const toggle = (id: string) => {
    const s = new Set(selected);
    if (s.has(id)) s.delete(id);
    else s.add(id);
    setSelected(s);
  };
  const openRows = rows.filter(selectable);
  const allSelected = openRows.length > 0 && openRows.every((r) => selected.has(r.id));

  const col = createColumnHelper<QueueItem>();
  const columns = [
    ...(can('recon:write')
      ? [
          col.display({
            id: 'select',
            header: () => (
              <input
                type="checkbox"
                aria-label="Select every open exception shown"
                checked={allSelected}
                disabled={openRows.length === 0}
                onChange={() => setSelected(allSelected ? new Set() : new Set(openRows.map((r) => r.id)))}
              />
            ),
            cell: (c) =>
              selectable(c.row.original) ? (
                <input
                  type="checkbox"
                  aria-label={`Select ${c.row.original.id}`}
                  checked={selected.has(c.row.original.id)}
                  onChange={() => toggle(c.row.original.id)}
                />
              ) : null,
          }),
        ]
      : []),
    col.accessor('id', {
      header: 'Exception',
      cell: (c) => (
        <span className="mono" title={c.getValue()}>
          {shortId(c.getValue())}
        </span>
      ),
    }),
    col.accessor('kind', { header: 'Kind', cell: (c) => c.getValue().replace('_', ' ') }),
    col.accessor('bank_code', { header: 'Bank' }),
    col.accessor('cycle_key', { header: 'Cycle', cell: (c) => c.getValue() ?? '—' }),
    col.accessor('amount_paise', {
      header: 'Amount',
      cell: (c) => {
        const e = c.row.original;
        return e.expected_paise === null
          ? rupees(e.amount_paise)
          : `${rupees(e.amount_paise)} (ours ${rupees(e.expected_paise)})`;
      },
    }),
    col.accessor('payment_id', {
      header: 'Payment',
      cell: (c) =>
        c.getValue() ? (
          <Link to={`/payments/${c.getValue()}`} className="mono">
            {shortId(c.getValue()!)}
          </Link>
        ) : (
          '—'
        ),
    }),
    col.accessor('status', {
      header: 'Status',
      cell: (c) => {
        const e = c.row.original;
        return (
          <span>
            <span className={`status s-${e.status}`}>{e.status.replace('_', ' ')}</span>
            {e.status === 'pending_approval' && (
              <span className="small">
                {' '}
                {label(e.requested_resolution)}, asked by {mine(e.requested_by) ? 'you' : whoShort(e.requested_by)}
              </span>
            )}
            {e.status === 'resolved' && <span className="small"> {label(e.resolution)}</span>}
          </span>
        );
      },
    }),
    col.accessor('age_seconds', { header: 'Age', cell: (c) => duration(c.getValue()) }),
    col.accessor('deadline_at', {
      header: 'Deadline',
      cell: (c) => {
        const e = c.row.original;
        return (
          <Deadline
            at={e.deadline_at}
            secondsLeft={e.seconds_to_deadline}
            done={e.status === 'resolved' ? { at: e.resolved_at, inTime: !e.overdue } : undefined}
          />
        );
      },
    }),
    col.display({
      id: 'actions',
      header: 'Actions',
      cell: (c) => {
        const e = c.row.original;
        if (e.status === 'open' && can('recon:write'))
          return (
            <button type="button" className="secondary small-btn" onClick={() => setResolving(e)}>
              Resolve<span className="sr-only"> {e.id}</span>
            </button>
          );
        if (e.status === 'pending_approval') {
          if (mine(e.requested_by)) return <span className="small muted">waiting for another operator</span>;
          if (!can('recon:approve')) return <span className="small muted">waiting for an approver</span>;
          return (
            <span className="proof">
              <button
                type="button"
                className="small-btn"
                disabled={approve.isPending}
                onClick={() => approve.mutate({ id: e.id, decision: 'approve' })}
              >
                Approve<span className="sr-only"> {e.id}</span>
              </button>
              <button
                type="button"
                className="secondary small-btn"
                disabled={approve.isPending}
                onClick={() => approve.mutate({ id: e.id, decision: 'reject' })}
              >
                Reject<span className="sr-only"> {e.id}</span>
              </button>
            </span>
          );
        }
        return null;
      },
    }),
  ];

  const field = (k: keyof Filter) => ({
    value: draft[k] ?? '',
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value }),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSelected(new Set());
    setFilter({ ...draft, bank_code: draft.bank_code?.trim().toUpperCase() || undefined });
  };

  return (
    <section aria-labelledby="rc">
      <h1 id="rc">Reconciliation</h1>
      <h2>Exception queue</h2>
      <form className="filters" onSubmit={submit} aria-label="Filter exceptions">
        <label>
          Bank
          <input placeholder="SIMBANK" {...field('bank_code')} />
        </label>
        <label>
          Kind
          <select {...field('kind')}>
            <option value="">any</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k.replace('_', ' ')}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select {...field('status')}>
            <option value="unresolved">open or pending approval</option>
            <option value="">any</option>
            <option value="open">open</option>
            <option value="pending_approval">pending approval</option>
            <option value="resolved">resolved</option>
          </select>
        </label>
        <label>
          Age
          <select {...field('min_age_hours')}>
            {AGES.map(([v, t]) => (
              <option key={v} value={v}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Deadline
          <select {...field('deadline')}>
            {DEADLINES.map(([v, t]) => (
              <option key={v} value={v}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <div className="filter-actions">
          <button type="submit">Search</button>
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setDraft({ status: 'unresolved' });
              setFilter({ status: 'unresolved' });
              setSelected(new Set());
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {note && (
        <p role="status" className="small" data-testid="recon-note">
          {note}
        </p>
      )}
      <ErrorNote error={queue.error} />
      {resolving && (
        <ResolveForm
          item={resolving}
          onClose={() => setResolving(undefined)}
          onDone={(r) => {
            setResolving(undefined);
            setNote(
              r.status === 'pending_approval'
                ? `${shortId(r.id)}: ${label(r.requested_resolution)} requested; it waits for a second operator`
                : `${shortId(r.id)}: resolved, ${label(r.resolution)}`,
            );
            refresh();
          }}
        />
      )}
      {can('recon:write') && selected.size > 0 && (
        <BulkBar
          ids={[...selected]}
          onDone={(n) => {
            setSelected(new Set());
            setNote(n);
            refresh();
          }}
        />
      )}
      <DataTable
        data={rows}
        columns={columns}
        caption="Reconciliation exceptions, newest first"
        empty={queue.isPending ? 'Loading…' : 'No exceptions match.'}
      />
      <LoadMore q={queue} what="exceptions" />
      <Files />
      <Runs />
    </section>
  );
}

function ResolveForm({
  item,
  onClose,
  onDone,
}: {
  item: QueueItem;
  onClose: () => void;
  onDone: (r: QueueItem) => void;
}) {
  const [resolution, setResolution] = useState('accept');
  const [reason, setReason] = useState('');
  const [amount, setAmount] = useState('');
  const [paymentId, setPaymentId] = useState('');
  const [problem, setProblem] = useState<string>();
  const send = useMutation({
    mutationFn: (body: Record<string, unknown>) => post<QueueItem>(`/v1/recon/exceptions/${item.id}/resolve`, body),
    onSuccess: onDone,
    onError: (e) => setProblem(errorText(e)),
  });
  const money = resolution === 'refund_customer' || resolution === 'reverse';
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    if (reason.trim().length < 3) return setProblem('Give a reason of at least 3 characters.');
    const body: Record<string, unknown> = { resolution, reason: reason.trim() };
    if (money && amount.trim()) {
      const p = parseRupees(amount);
      if (p === undefined) return setProblem('The amount is not an amount in rupees.');
      body.amount_paise = p;
    }
    if (resolution === 'match' && paymentId.trim()) body.payment_id = paymentId.trim();
    send.mutate(body);
  };
  return (
    <form className="card" onSubmit={submit} aria-label={`Resolve exception ${item.id}`}>
      <h3>
        Resolve <span className="mono">{item.id}</span>
      </h3>
      <p className="small">
        {item.kind.replace('_', ' ')} · {item.bank_code} · {rupees(item.amount_paise)} · {item.detail}
      </p>
      <label>
        Resolution
        <select value={resolution} onChange={(e) => setResolution(e.target.value)}>
          {RESOLUTIONS.map(([v, t]) => (
            <option key={v} value={v}>
              {t}
            </option>
          ))}
        </select>
      </label>
      {money && (
        <label>
          Amount (₹), if less than the default
          <input inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} />
        </label>
      )}
      {resolution === 'match' && (
        <label>
          Payment id (when not the exception's own)
          <input placeholder="pay_…" value={paymentId} onChange={(e) => setPaymentId(e.target.value)} />
        </label>
      )}
      <label>
        Reason
        <textarea value={reason} onChange={(e) => setReason(e.target.value)} rows={2} maxLength={500} required />
      </label>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
      <div className="filter-actions">
        <button type="submit" disabled={send.isPending}>
          Submit resolution
        </button>
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function BulkBar({ ids, onDone }: { ids: string[]; onDone: (note: string) => void }) {
  const [resolution, setResolution] = useState('accept');
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState<string>();
  const send = useMutation({
    mutationFn: (csv: string) =>
      post<{ resolved: number; pending_approval?: number }>('/v1/recon/exceptions/bulk-resolve', { csv }),
    onSuccess: (r) =>
      onDone(
        `${ids.length} exceptions: ${r.resolved} resolved${r.pending_approval ? `, ${r.pending_approval} waiting for a second operator` : ''}`,
      ),
    onError: (e) => {
      const d = e instanceof ApiError ? e.message : String(e);
      setProblem(d);
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    const r = reason.trim();
    if (r.length < 3) return setProblem('Give a reason of at least 3 characters.');
    // The bulk format is plain comma-separated values without quoting.
    if (/[,\r\n]/.test(r)) return setProblem('A bulk reason cannot contain a comma or a line break.');
    send.mutate(['exception_id,resolution,reason', ...ids.map((id) => `${id},${resolution},${r}`)].join('\n'));
  };
  return (
    <form className="card bulkbar" onSubmit={submit} aria-label="Resolve the selected exceptions">
      <strong>{ids.length} selected</strong>
      <label>
        Resolution for all
        <select value={resolution} onChange={(e) => setResolution(e.target.value)}>
          {RESOLUTIONS.filter(([v]) => v !== 'match').map(([v, t]) => (
            <option key={v} value={v}>
              {t}
            </option>
          ))}
        </select>
      </label>
      <label>
        Reason for all
        <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} />
      </label>
      <button type="submit" disabled={send.isPending}>
        Apply to selected
      </button>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </form>
  );
}

const outcomes = (o: Record<string, number>) =>
  Object.entries(o)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k.replace('_', ' ')} ${n}`)
    .join(', ') || '—';

function Files() {
  const list = useInfiniteQuery({
    queryKey: ['recon-files'],
    queryFn: ({ pageParam }) => get<Page<ReconFile>>('/v1/recon/files' + qs({ limit: 20, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (l) => l.next_cursor ?? undefined,
  });
  const col = createColumnHelper<ReconFile>();
  const columns = [
    col.accessor('bank_code', { header: 'Bank' }),
    col.accessor('cycle_key', { header: 'Cycle' }),
    col.accessor('file_name', { header: 'File', cell: (c) => <span className="mono">{c.getValue() ?? '—'}</span> }),
    col.accessor('lines', { header: 'Lines' }),
    col.accessor('credit_paise', { header: 'Credits', cell: (c) => rupees(c.getValue()) }),
    col.accessor('debit_paise', { header: 'Debits', cell: (c) => rupees(c.getValue()) }),
    col.accessor('matched_paise', { header: 'Matched', cell: (c) => rupees(c.getValue()) }),
    col.accessor('outcomes', { header: 'Outcomes', cell: (c) => outcomes(c.getValue()) }),
    col.accessor('status', {
      header: 'Status',
      cell: (c) => <span className={`status s-${c.getValue()}`}>{c.getValue()}</span>,
    }),
    col.accessor('created_at', { header: 'Ingested', cell: (c) => when(c.getValue()) }),
  ];
  const rows = list.data?.pages.flatMap((p) => p.data) ?? [];
  return (
    <>
      <h2>Bank files</h2>
      <ErrorNote error={list.error} />
      <DataTable
        data={rows}
        columns={columns}
        caption="Bank settlement files, newest first"
        empty={list.isPending ? 'Loading…' : 'No files yet.'}
      />
      <LoadMore q={list} what="files" />
    </>
  );
}

function Runs() {
  const list = useInfiniteQuery({
    queryKey: ['recon-runs'],
    queryFn: ({ pageParam }) => get<Page<Run>>('/v1/recon/runs' + qs({ limit: 20, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (l) => l.next_cursor ?? undefined,
  });
  const col = createColumnHelper<Run>();
  const columns = [
    col.accessor('id', { header: 'Run', cell: (c) => <span className="mono">{shortId(c.getValue())}</span> }),
    col.accessor('file_id', { header: 'File', cell: (c) => <span className="mono">{shortId(c.getValue())}</span> }),
    col.accessor('rules_id', { header: 'Rules' }),
    col.accessor('counts', {
      header: 'Counts',
      cell: (c) =>
        Object.entries(c.getValue())
          .map(([k, v]) => `${k.replace('_', ' ')}: ${outcomes(v)}`)
          .join('; '),
    }),
    col.accessor('finished_at', {
      header: 'Took',
      cell: (c) => `${Math.max(0, Date.parse(c.getValue()) - Date.parse(c.row.original.started_at))} ms`,
    }),
    col.accessor('started_at', { header: 'Started', cell: (c) => when(c.getValue()) }),
    col.accessor('run_by', { header: 'By', cell: (c) => c.getValue() ?? '—' }),
  ];
  const rows = list.data?.pages.flatMap((p) => p.data) ?? [];
  return (
    <>
      <h2>Matching runs</h2>
      <ErrorNote error={list.error} />
      <DataTable
        data={rows}
        columns={columns}
        caption="Matching runs, newest first"
        empty={list.isPending ? 'Loading…' : 'No runs yet.'}
      />
      <LoadMore q={list} what="runs" />
    </>
  );
}
