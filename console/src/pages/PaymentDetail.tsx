import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, FINAL, get, post, qs, type AuditRecord, type Page, type Payment, type Refund } from '../api.ts';
import { ErrorNote } from '../components/DataTable.tsx';
import { ProofButton } from '../components/ProofButton.tsx';
import { parseRupees, rupees, when } from '../format.ts';
import { Link } from '../router.tsx';
import { useCan } from '../session.tsx';
import { describeApproval, isApprovalRequired, type Approval, type ApprovalRequired } from './Approvals.tsx';

interface Timeline {
  events: {
    at: string;
    from_status: string | null;
    to_status: string;
    source: string;
    response_code: string | null;
    detail: string | null;
  }[];
  ledger_entries: {
    id: string;
    book: string;
    kind: string;
    reference: string;
    created_at: string;
    postings: { account: string; type: string; amount: number }[];
  }[];
}
interface PaymentRewards {
  program_id: string;
  earned: { points: number; clawed_back: number } | null;
  redemption: { points: number; value_paise: number; status: string } | null;
}

export function PaymentDetail({ id }: { id: string }) {
  const can = useCan();
  const payment = useQuery({
    queryKey: ['payment', id],
    queryFn: () => get<Payment>(`/v1/payments/${id}`),
    refetchInterval: (q) => (q.state.data && FINAL.has(q.state.data.status) ? false : 2_000),
  });
  const refunds = useQuery({
    queryKey: ['payment', id, 'refunds'],
    queryFn: () => get<Page<Refund>>(`/v1/payments/${id}/refunds`),
  });
  // Four eyes: refunds above the threshold wait for a second operator; this payment's requests.
  const policy = useQuery({
    queryKey: ['refund-policy'],
    enabled: can('refunds:write'),
    staleTime: 5 * 60_000,
    queryFn: () => get<{ window_days: number; approval_threshold_paise: number }>('/v1/payments/refund-policy'),
  });
  const approvals = useQuery({
    queryKey: ['payment', id, 'approvals'],
    enabled: can('refunds:write') || can('refunds:approve'),
    queryFn: () => get<Page<Approval>>(`/v1/approvals${qs({ subject_type: 'payment', subject_id: id, limit: 20 })}`),
  });
  const pending = approvals.data?.data.filter((a) => a.status === 'pending') ?? [];
  const timeline = useQuery({
    queryKey: ['payment', id, 'timeline'],
    queryFn: () => get<Timeline>(`/v1/payments/${id}/timeline`),
  });
  const rewards = useQuery({
    queryKey: ['payment', id, 'rewards'],
    enabled: can('rewards:read'),
    queryFn: async () => {
      try {
        return await get<PaymentRewards>(`/v1/rewards/payments/${id}`);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }
    },
  });
  const audit = useQuery({
    queryKey: ['payment', id, 'audit'],
    enabled: can('audit:read'),
    queryFn: () => get<Page<AuditRecord>>('/v1/audit/events' + qs({ resource_id: id, limit: 50 })),
  });
  const p = payment.data;
  if (payment.error)
    return (
      <section>
        <h1>Payment</h1>
        <ErrorNote error={payment.error} />
        <Link to="/payments">Back to payments</Link>
      </section>
    );
  if (!p) return <p role="status">Loading…</p>;
  return (
    <section aria-labelledby="pd">
      <p>
        <Link to="/payments">← Payments</Link>
      </p>
      <h1 id="pd">
        Payment {rupees(p.amount)}{' '}
        <span className={`status s-${p.status}`} data-testid="payment-status">
          {p.status.replace('_', ' ')}
        </span>
      </h1>
      <dl className="facts">
        <dt>Id</dt>
        <dd className="mono">{p.id}</dd>
        <dt>Created</dt>
        <dd>{when(p.created_at)}</dd>
        <dt>Completed</dt>
        <dd>{when(p.completed_at)}</dd>
        <dt>Method</dt>
        <dd>{p.method}</dd>
        <dt>Terminal</dt>
        <dd className="mono">{p.terminal_id}</dd>
        <dt>Merchant</dt>
        <dd className="mono">{p.merchant_id}</dd>
        <dt>Bank</dt>
        <dd>
          {p.bank.code} {p.bank.ref && <span className="mono">({p.bank.ref})</span>}{' '}
          {p.bank.response_code && <span>code {p.bank.response_code}</span>}
        </dd>
        <dt>Payer</dt>
        <dd>{p.payer_vpa ?? '—'}</dd>
        <dt>Refunded</dt>
        <dd>
          {rupees(p.refunded_amount)} (refundable {rupees(p.refundable_amount)})
        </dd>
        {p.needs_reconciliation && (
          <>
            <dt>Reconciliation</dt>
            <dd className="error">flagged</dd>
          </>
        )}
      </dl>

      {can('refunds:write') && p.refundable_amount > 0 && (
        <RefundForm payment={p} threshold={policy.data?.approval_threshold_paise} />
      )}
      {pending.length > 0 && (
        <div className="card" data-testid="pending-approvals">
          <h2>Waiting for a second approver</h2>
          <ul>
            {pending.map((a) => (
              <li key={a.id}>
                {describeApproval(a)} · asked by {a.requested_by.name ?? a.requested_by.id} {when(a.requested_at)} ·
                expires {when(a.expires_at)}{' '}
                {a.can_decide ? <Link to="/approvals">Decide it on the Approvals page</Link> : '(not yours to decide)'}
              </li>
            ))}
          </ul>
        </div>
      )}

      <h2>Timeline</h2>
      <ErrorNote error={timeline.error} />
      <ol className="timeline" aria-label="State history">
        {timeline.data?.events.map((e, i) => (
          <li key={i}>
            <time>{when(e.at)}</time>{' '}
            <strong>{e.from_status ? `${e.from_status} → ${e.to_status}` : e.to_status}</strong>{' '}
            <span className="muted">
              via {e.source}
              {e.response_code ? `, code ${e.response_code}` : ''}
              {e.detail ? ` — ${e.detail}` : ''}
            </span>
          </li>
        ))}
      </ol>

      <h2>Refunds</h2>
      {refunds.data?.data.length ? (
        <ul>
          {refunds.data.data.map((r) => (
            <li key={r.id}>
              <span className="mono">{r.id}</span> {rupees(r.amount)}{' '}
              <span className={`status s-${r.status}`}>{r.status}</span> {when(r.created_at)}
              {r.reason ? ` — ${r.reason}` : ''}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No refunds.</p>
      )}

      <h2>Ledger entries</h2>
      {timeline.data?.ledger_entries.length ? (
        timeline.data.ledger_entries.map((e) => (
          <div key={e.id} className="table-wrap" tabIndex={0} role="region" aria-label={`Ledger entry ${e.kind}`}>
            <table>
              <caption>
                {e.kind} · {e.book} · {when(e.created_at)} <span className="mono small">{e.id}</span>
              </caption>
              <thead>
                <tr>
                  <th scope="col">Account</th>
                  <th scope="col">Debit</th>
                  <th scope="col">Credit</th>
                </tr>
              </thead>
              <tbody>
                {e.postings.map((x, i) => (
                  <tr key={i}>
                    <td className="mono">{x.account}</td>
                    <td>{x.amount > 0 ? (e.book === 'INR' ? rupees(x.amount) : `${x.amount} pts`) : ''}</td>
                    <td>{x.amount < 0 ? (e.book === 'INR' ? rupees(-x.amount) : `${-x.amount} pts`) : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))
      ) : (
        <p className="muted">Nothing posted yet (a payment posts when it succeeds).</p>
      )}

      {can('rewards:read') && (
        <>
          <h2>Reward points</h2>
          {rewards.data ? (
            <p>
              Program <span className="mono">{rewards.data.program_id}</span>: earned {rewards.data.earned?.points ?? 0}{' '}
              points{rewards.data.earned?.clawed_back ? `, ${rewards.data.earned.clawed_back} clawed back` : ''}
              {rewards.data.redemption
                ? `; redeemed ${rewards.data.redemption.points} points (${rupees(rewards.data.redemption.value_paise)}, ${rewards.data.redemption.status})`
                : ''}
              .
            </p>
          ) : (
            <p className="muted">No reward points on this payment.</p>
          )}
        </>
      )}

      {can('audit:read') && (
        <>
          <h2>Audit records</h2>
          <ErrorNote error={audit.error} />
          <ul className="audit-list">
            {audit.data?.data.map((a) => (
              <li key={a.id}>
                <time>{when(a.at)}</time> <strong>{a.action}</strong> <span className="muted">{a.outcome}</span>{' '}
                {a.leaf_index === null ? (
                  <span className="muted small">not sealed yet</span>
                ) : (
                  <ProofButton id={a.id} />
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function RefundForm({ payment, threshold }: { payment: Payment; threshold?: number }) {
  const qc = useQueryClient();
  const [amount, setAmount] = useState((payment.refundable_amount / 100).toFixed(2));
  const [reason, setReason] = useState('');
  // One idempotency key per form submission: a double click or a retried request refunds once.
  const refund = useMutation({
    mutationFn: (v: { amount: number; reason?: string; key: string }) =>
      post<Refund | ApprovalRequired>(
        `/v1/payments/${payment.id}/refunds`,
        { amount: v.amount, ...(v.reason ? { reason: v.reason } : {}) },
        { idempotencyKey: v.key },
      ),
    onSettled: () => qc.invalidateQueries({ queryKey: ['payment', payment.id] }),
  });
  const [error, setError] = useState<string>();
  const entered = parseRupees(amount);
  const needsApproval = threshold !== undefined && entered !== undefined && entered > threshold;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const paise = parseRupees(amount);
    if (!paise) return setError('Enter an amount in rupees, e.g. 49.00');
    if (paise > payment.refundable_amount)
      return setError(`At most ${rupees(payment.refundable_amount)} is left to refund`);
    setError(undefined);
    refund.mutate({ amount: paise, reason: reason.trim() || undefined, key: crypto.randomUUID() });
  };
  return (
    <form className="card refund" onSubmit={submit} aria-label="Refund">
      <h2>Refund</h2>
      <label>
        Amount (₹)
        <input inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} required />
      </label>
      {threshold !== undefined && (
        <p className={needsApproval ? undefined : 'muted'} data-testid="refund-approval-note">
          {needsApproval
            ? `Above ${rupees(threshold)}: this refund needs a second approver. It is sent as a request; no money moves until another operator approves it.`
            : `Refunds above ${rupees(threshold)} need a second approver.`}
        </p>
      )}
      <label>
        Reason (optional)
        <input maxLength={140} value={reason} onChange={(e) => setReason(e.target.value)} />
      </label>
      <button type="submit" disabled={refund.isPending}>
        Refund
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <ErrorNote error={refund.error} />
      {refund.data && isApprovalRequired(refund.data) && (
        <p role="status" className="ok" data-testid="approval-filed">
          Sent for approval: refund {rupees(refund.data.error.details.approval.payload.amount ?? 0)} waits for a second
          operator (request <span className="mono">{refund.data.error.details.approval.id}</span>).
        </p>
      )}
      {refund.data && !isApprovalRequired(refund.data) && (
        <p role="status" className="ok">
          Refund {rupees(refund.data.amount)}: {refund.data.status}.
        </p>
      )}
    </form>
  );
}
