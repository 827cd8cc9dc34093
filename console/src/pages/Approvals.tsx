import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post, qs, type Page } from '../api.ts';
import { ErrorNote } from '../components/DataTable.tsx';
import { rupees, when } from '../format.ts';
import { Link } from '../router.tsx';

// Four eyes: requests waiting for a second operator (refunds above the threshold, MFA resets).
// The server lists the kinds this operator decides plus their own requests, and says per request
// whether they may decide it (can_decide): never their own. Approving carries the request out.

export interface Approval {
  id: string;
  kind: 'refund' | 'mfa_reset' | 'compensation_retry';
  subject: { type: string; id: string };
  merchant_id: string | null;
  payload: {
    amount?: number;
    reason?: string | null;
    operator_name?: string;
    payment_id?: string;
    day?: number;
    payee_vpa?: string;
  };
  status: 'pending' | 'approved' | 'rejected' | 'expired' | 'failed';
  requested_by: { id: string; name: string | null };
  requested_at: string;
  decided_by: { id: string; name: string | null } | null;
  decided_at: string | null;
  reason: string | null;
  outcome: Record<string, unknown> | null;
  expires_at: string;
  can_decide: boolean;
}

/** The 202 body of an action a second operator must approve. */
export interface ApprovalRequired {
  error: { code: 'approval_required'; message: string; details: { approval: Approval } };
}
export const isApprovalRequired = (x: unknown): x is ApprovalRequired =>
  (x as ApprovalRequired | undefined)?.error?.code === 'approval_required';

export function describeApproval(a: Approval) {
  if (a.kind === 'refund')
    return (
      <>
        Refund {rupees(a.payload.amount ?? 0)} of <Link to={`/payments/${a.subject.id}`}>{a.subject.id}</Link>
        {a.payload.reason ? ` — ${a.payload.reason}` : ''}
      </>
    );
  if (a.kind === 'compensation_retry')
    return (
      <>
        Compensation credit {rupees(a.payload.amount ?? 0)} (day {a.payload.day}) of{' '}
        <Link to={`/payments/${a.payload.payment_id}`}>{a.payload.payment_id}</Link> sent again to {a.payload.payee_vpa}
        {a.payload.reason ? ` — ${a.payload.reason}` : ''}
      </>
    );
  return <>MFA reset of {a.payload.operator_name ?? a.subject.id}</>;
}

const STATUSES = ['pending', 'approved', 'rejected', 'expired', 'failed'] as const;

export default function Approvals() {
  const [status, setStatus] = useState<string>('pending');
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const list = useQuery({
    queryKey: ['approvals', status, cursor],
    queryFn: () => get<Page<Approval>>(`/v1/approvals${qs({ status, cursor, limit: 50 })}`),
    refetchInterval: 10_000,
  });
  return (
    <section aria-labelledby="ap">
      <h1 id="ap">Approvals</h1>
      <p className="muted">
        Refunds above the approval threshold and MFA resets wait here for a second operator. Nobody decides their own
        request; an approved request is carried out at once.
      </p>
      <label>
        Show
        <select
          value={status}
          onChange={(e) => {
            setStatus(e.target.value);
            setCursors([]);
          }}
        >
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <ErrorNote error={list.error} />
      {list.isPending && <p role="status">Loading…</p>}
      {list.data && list.data.data.length === 0 && <p className="muted">No {status} requests.</p>}
      <ul className="approvals" aria-label="Approval requests">
        {list.data?.data.map((a) => (
          <ApprovalItem key={a.id} a={a} />
        ))}
      </ul>
      <div className="pager">
        {cursors.length > 0 && (
          <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
            Newer
          </button>
        )}
        {list.data?.next_cursor && (
          <button type="button" onClick={() => setCursors([...cursors, list.data.next_cursor!])}>
            Older
          </button>
        )}
      </div>
    </section>
  );
}

function ApprovalItem({ a }: { a: Approval }) {
  const qc = useQueryClient();
  const [reason, setReason] = useState('');
  const done = () => {
    void qc.invalidateQueries({ queryKey: ['approvals'] });
    if (a.kind === 'refund') void qc.invalidateQueries({ queryKey: ['payment', a.subject.id] });
    if (a.kind === 'mfa_reset') void qc.invalidateQueries({ queryKey: ['operators'] });
  };
  const approve = useMutation({ mutationFn: () => post<Approval>(`/v1/approvals/${a.id}/approve`), onSettled: done });
  const reject = useMutation({
    mutationFn: () => post<Approval>(`/v1/approvals/${a.id}/reject`, { reason: reason.trim() }),
    onSettled: done,
  });
  const submitReject = (e: FormEvent) => {
    e.preventDefault();
    if (reason.trim()) reject.mutate();
  };
  const busy = approve.isPending || reject.isPending;
  return (
    <li className="card" data-testid={`approval-${a.id}`}>
      <h2>{describeApproval(a)}</h2>
      <p>
        <span className={`status s-${a.status}`}>{a.status}</span> · asked by {a.requested_by.name ?? a.requested_by.id}{' '}
        {when(a.requested_at)}
        {a.status === 'pending' ? ` · expires ${when(a.expires_at)}` : ''}
        {a.decided_by ? ` · decided by ${a.decided_by.name ?? a.decided_by.id} ${when(a.decided_at)}` : ''}
        {a.reason ? ` — ${a.reason}` : ''}
      </p>
      {a.status === 'pending' && !a.can_decide && (
        <p className="muted">Waiting for another operator: you cannot decide this request.</p>
      )}
      {a.can_decide && (
        <div className="actions">
          <button type="button" disabled={busy} onClick={() => approve.mutate()}>
            Approve
          </button>
          <form onSubmit={submitReject} aria-label={`Reject ${a.id}`}>
            <label>
              Reason for rejecting
              <input maxLength={200} value={reason} onChange={(e) => setReason(e.target.value)} required />
            </label>
            <button type="submit" disabled={busy}>
              Reject
            </button>
          </form>
        </div>
      )}
      <ErrorNote error={approve.error ?? reject.error} />
      {approve.data && (
        <p role="status" className="ok">
          Approved
          {approve.data.outcome?.refund_id ? `: refund ${String(approve.data.outcome.refund_id)} made` : ''}.
        </p>
      )}
    </li>
  );
}
