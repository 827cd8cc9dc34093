import { useState } from 'react';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { api, get, qs, type Page, type Terminal } from '../api.ts';
import { DataTable, ErrorNote, LoadMore } from '../components/DataTable.tsx';
import { when } from '../format.ts';
import { useCan } from '../session.tsx';

// The fleet by store and status, online or offline and when each was last heard from (the
// gateway records it from the broker; refreshed every 10 s); disabling a terminal stops it taking
// payments.

const col = createColumnHelper<Terminal>();

export function Terminals() {
  const can = useCan();
  const qc = useQueryClient();
  const [status, setStatus] = useState('');
  const [store, setStore] = useState('');
  const [online, setOnline] = useState('');
  const [open, setOpen] = useState<string>();
  const list = useInfiniteQuery({
    queryKey: ['terminals', status, store, online],
    queryFn: ({ pageParam }) =>
      get<Page<Terminal>>('/v1/terminals' + qs({ status, store_id: store, online, limit: 100, cursor: pageParam })),
    refetchInterval: 10_000,
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (l) => l.next_cursor ?? undefined,
  });
  const toggle = useMutation({
    mutationFn: (t: Terminal) =>
      api<Terminal>('PATCH', `/v1/terminals/${t.id}`, { status: t.status === 'active' ? 'disabled' : 'active' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['terminals'] }),
  });
  const rows = list.data?.pages.flatMap((p) => p.data) ?? [];
  const columns = [
    col.accessor('id', { header: 'Terminal', cell: (c) => <span className="mono">{c.getValue()}</span> }),
    col.accessor('label', { header: 'Label', cell: (c) => (c.getValue() as string | null) ?? '—' }),
    col.accessor('store_id', { header: 'Store', cell: (c) => <span className="mono">{c.getValue()}</span> }),
    col.accessor('status', {
      header: 'Status',
      cell: (c) => <span className={`status s-${c.getValue()}`}>{c.getValue()}</span>,
    }),
    col.accessor('online', {
      header: 'Connection',
      cell: (c) =>
        c.getValue() ? (
          <span className="status s-online">online</span>
        ) : (
          <span className="status s-offline">offline</span>
        ),
    }),
    col.accessor('last_seen_at', {
      header: 'Last seen',
      cell: (c) => (c.getValue() ? when(c.getValue()) : 'never'),
    }),
    col.accessor('created_at', { header: 'Created', cell: (c) => when(c.getValue()) }),
    col.display({
      id: 'security',
      header: 'Security',
      cell: (c) => (
        <button
          type="button"
          className="secondary small-btn"
          aria-expanded={open === c.row.original.id}
          onClick={() => setOpen(open === c.row.original.id ? undefined : c.row.original.id)}
        >
          Certificates and violations
        </button>
      ),
    }),
    ...(can('terminals:write')
      ? [
          col.display({
            id: 'actions',
            header: 'Actions',
            cell: (c) => (
              <button
                type="button"
                className="secondary small-btn"
                onClick={() => toggle.mutate(c.row.original)}
                disabled={toggle.isPending}
              >
                {c.row.original.status === 'active' ? 'Disable' : 'Enable'}
              </button>
            ),
          }),
        ]
      : []),
  ];
  return (
    <section aria-labelledby="tm">
      <h1 id="tm">Terminals</h1>
      <div className="filters" role="group" aria-label="Filter terminals">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">any</option>
            <option>active</option>
            <option>disabled</option>
          </select>
        </label>
        <label>
          Connection
          <select value={online} onChange={(e) => setOnline(e.target.value)}>
            <option value="">any</option>
            <option value="true">online</option>
            <option value="false">offline</option>
          </select>
        </label>
        <label>
          Store
          <input placeholder="sto_…" value={store} onChange={(e) => setStore(e.target.value.trim())} />
        </label>
      </div>
      <ErrorNote error={list.error ?? toggle.error} />
      <DataTable
        data={rows}
        columns={columns}
        caption="Terminals"
        empty={list.isPending ? 'Loading…' : 'No terminals.'}
      />
      <LoadMore q={list} what="terminals" />
      {open && <TerminalSecurity id={open} />}
    </section>
  );
}

interface Security {
  certificates: {
    serial: string;
    not_before: string;
    not_after: string;
    revoked_at: string | null;
    revoke_reason: string | null;
  }[];
  violations: { kind: string; detail: string | null; at: string }[];
}

interface Revoked {
  terminal_id: string;
  revoked_certificates: string[];
  revoked_secrets: number;
  crl_required: boolean;
}

/**
 * A terminal's client certificates and its latest refused access; revocation (terminals:revoke).
 * Enrolment stays a CLI command, where the CA key lives (console/README.md says why).
 */
function TerminalSecurity({ id }: { id: string }) {
  const can = useCan();
  const qc = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('lost_or_stolen');
  const sec = useQuery({
    queryKey: ['terminal', id, 'security'],
    queryFn: () => get<Security>(`/v1/terminals/${id}/security`),
  });
  const revoke = useMutation({
    mutationFn: () => api<Revoked>('POST', `/v1/terminals/${id}/revoke`, { reason }),
    onSuccess: () => {
      setConfirming(false);
      qc.invalidateQueries({ queryKey: ['terminal', id, 'security'] });
      qc.invalidateQueries({ queryKey: ['terminals'] });
    },
  });
  const done = revoke.data;
  return (
    <div className="card" role="region" aria-label={`Security of ${id}`} data-testid="terminal-security">
      <h2>
        Terminal <span className="mono">{id}</span>
      </h2>
      <ErrorNote error={sec.error} />
      <h3>Certificates</h3>
      {sec.data?.certificates.length ? (
        <ul>
          {sec.data.certificates.map((c) => (
            <li key={c.serial}>
              <span className="mono">{c.serial}</span> valid {when(c.not_before)} – {when(c.not_after)}
              {c.revoked_at ? (
                <strong className="error">
                  {' '}
                  revoked {when(c.revoked_at)}
                  {c.revoke_reason ? ` (${c.revoke_reason})` : ''}
                </strong>
              ) : (
                ''
              )}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">
          No client certificate (enrol with <code>tillpoint terminals enroll {id}</code>).
        </p>
      )}
      {can('terminals:revoke') && (
        <div className="filters" role="group" aria-label="Revoke credentials">
          {!confirming ? (
            <button type="button" className="secondary" onClick={() => setConfirming(true)}>
              Revoke credentials…
            </button>
          ) : (
            <>
              <label>
                Reason
                <select value={reason} onChange={(e) => setReason(e.target.value)}>
                  <option value="lost_or_stolen">lost or stolen</option>
                  <option value="key_compromise">key compromise</option>
                  <option value="decommissioned">decommissioned</option>
                  <option value="superseded">superseded</option>
                  <option value="unspecified">unspecified</option>
                </select>
              </label>
              <button type="button" onClick={() => revoke.mutate()} disabled={revoke.isPending}>
                Revoke every certificate and the MQTT secret
              </button>
              <button type="button" className="secondary" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </>
          )}
        </div>
      )}
      <ErrorNote error={revoke.error} />
      {done && (
        <p role="status" data-testid="revoked">
          Revoked {done.revoked_certificates.length} certificate(s) and {done.revoked_secrets} secret(s); live sessions
          on them are closed within seconds.
          {done.crl_required &&
            ' The external broker checks the CRL: publish it where the CA key is (tillpoint pki crl).'}
        </p>
      )}
      <h3>Recent protocol violations</h3>
      {sec.data?.violations.length ? (
        <ul>
          {sec.data.violations.map((v, i) => (
            <li key={i}>
              {when(v.at)} <strong>{v.kind}</strong>
              {v.detail ? ` — ${v.detail}` : ''}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">None recorded.</p>
      )}
    </div>
  );
}
