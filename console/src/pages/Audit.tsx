import { useState, type FormEvent } from 'react';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { get, qs, type AuditRecord, type Page } from '../api.ts';
import { DataTable, ErrorNote, LoadMore } from '../components/DataTable.tsx';
import { ProofButton } from '../components/ProofButton.tsx';
import { when } from '../format.ts';

// The audit trail (auditors only; every read of it is itself recorded), the latest signed tree
// head, and a proof check per record that runs in the browser.

interface Head {
  head: { tree_size: number; root_hash: string; timestamp: string; key_id: string } | null;
  public_key: string;
  key_id: string;
}
interface Filter {
  action?: string;
  actor_id?: string;
  resource_id?: string;
}

const col = createColumnHelper<AuditRecord>();
const columns = [
  col.accessor('at', { header: 'When', cell: (c) => when(c.getValue()) }),
  col.accessor('action', { header: 'Action' }),
  col.accessor('outcome', { header: 'Outcome' }),
  col.accessor((a) => String(a.actor.id ?? a.actor.type ?? ''), {
    id: 'actor',
    header: 'Actor',
    cell: (c) => <span className="mono">{c.getValue()}</span>,
  }),
  col.accessor((a) => String(a.resource.id ?? a.resource.type ?? ''), {
    id: 'resource',
    header: 'Resource',
    cell: (c) => <span className="mono">{c.getValue()}</span>,
  }),
  col.display({
    id: 'proof',
    header: 'Proof',
    cell: (c) =>
      c.row.original.leaf_index === null ? (
        <span className="muted small">not sealed yet</span>
      ) : (
        <ProofButton id={c.row.original.id} />
      ),
  }),
];

export default function Audit() {
  const [draft, setDraft] = useState<Filter>({});
  const [filter, setFilter] = useState<Filter>({});
  const head = useQuery({
    queryKey: ['audit', 'head'],
    queryFn: () => get<Head>('/v1/audit/head'),
    refetchInterval: 30_000,
  });
  const list = useInfiniteQuery({
    queryKey: ['audit', filter],
    queryFn: ({ pageParam }) =>
      get<Page<AuditRecord>>('/v1/audit/events' + qs({ ...filter, limit: 50, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (l) => l.next_cursor ?? undefined,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setFilter(Object.fromEntries(Object.entries(draft).filter(([, v]) => v)));
  };
  const field = (k: keyof Filter) => ({
    value: draft[k] ?? '',
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value.trim() }),
  });
  const h = head.data?.head;
  return (
    <section aria-labelledby="au">
      <h1 id="au">Audit trail</h1>
      <div className="card">
        <h2>Latest signed tree head</h2>
        <ErrorNote error={head.error} />
        {h ? (
          <dl className="facts" data-testid="tree-head">
            <dt>Records</dt>
            <dd>{h.tree_size}</dd>
            <dt>Root</dt>
            <dd className="mono wrap">{h.root_hash}</dd>
            <dt>Signed</dt>
            <dd>
              {when(h.timestamp)} with key {h.key_id}
            </dd>
            <dt>Public key</dt>
            <dd className="mono wrap">{head.data!.public_key}</dd>
          </dl>
        ) : (
          head.data && (
            <p className="muted">No head signed yet: the worker signs one within a minute of the first records.</p>
          )
        )}
      </div>
      <form className="filters" onSubmit={submit} aria-label="Filter the audit trail">
        <label>
          Action
          <input placeholder="payment.refunded" {...field('action')} />
        </label>
        <label>
          Actor
          <input placeholder="opr_… / key_…" {...field('actor_id')} />
        </label>
        <label>
          Resource
          <input placeholder="pay_…" {...field('resource_id')} />
        </label>
        <div className="filter-actions">
          <button type="submit">Search</button>
        </div>
      </form>
      <ErrorNote error={list.error} />
      <DataTable
        data={list.data?.pages.flatMap((p) => p.data) ?? []}
        columns={columns}
        caption="Audit records, newest first"
        empty={list.isPending ? 'Loading…' : 'No records match.'}
      />
      <LoadMore q={list} what="records" />
    </section>
  );
}
