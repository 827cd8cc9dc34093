import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { ApiError, get, qs, type Page } from '../api.ts';
import { ErrorNote } from '../components/DataTable.tsx';
import { parseRupees, rupees, when } from '../format.ts';

// Programs with their earn rules, a live preview of what a basket earns (the API's own quote,
// so the preview is the rule engine, not a copy of it), and a customer's balance and statement.

interface Program {
  id: string;
  owner_merchant_id: string | null;
  name: string;
  status: string;
  point_value_paise: number;
  earn: { points: number; per_amount_paise: number; rounding: string };
  budget_points: number | null;
  budget_used: number;
  validity_days: number | null;
}
interface Rule {
  id: string;
  kind: string;
  multiplier_bp?: number;
  amount_paise?: number;
  points?: number;
  description: string | null;
  conditions: Record<string, unknown>;
}
interface Quote {
  earn_points: number;
  upi_amount: number;
  program_id: string;
}
interface Balance {
  program_id: string;
  available: number;
  pending: number;
  expiring_30d: number;
}
interface Movement {
  id: string;
  kind: string;
  points: number;
  payment_id: string | null;
  created_at: string;
}

export function Rewards() {
  const programs = useQuery({
    queryKey: ['programs'],
    queryFn: () => get<Page<Program>>('/v1/rewards/programs?limit=100'),
  });
  return (
    <section aria-labelledby="rw">
      <h1 id="rw">Rewards</h1>
      <ErrorNote error={programs.error} />
      {programs.data?.data.map((p) => (
        <ProgramCard key={p.id} p={p} />
      ))}
      {programs.data && programs.data.data.length === 0 && <p className="muted">No reward programs.</p>}
      <Customer
        merchants={[...new Set(programs.data?.data.map((p) => p.owner_merchant_id).filter((m): m is string => !!m))]}
      />
    </section>
  );
}

function ProgramCard({ p }: { p: Program }) {
  const rules = useQuery({
    queryKey: ['programs', p.id, 'rules'],
    queryFn: () => get<Page<Rule>>(`/v1/rewards/programs/${p.id}/rules`),
  });
  const [amount, setAmount] = useState('149');
  const paise = parseRupees(amount);
  const quote = useQuery({
    queryKey: ['quote', p.owner_merchant_id, paise],
    enabled: !!paise && !!p.owner_merchant_id,
    queryFn: () => get<Quote>('/v1/rewards/quote' + qs({ merchant_id: p.owner_merchant_id, amount: paise })),
  });
  return (
    <div className="card">
      <h2>
        {p.name} <span className={`status s-${p.status}`}>{p.status}</span>
      </h2>
      <p>
        Earns {p.earn.points} point{p.earn.points === 1 ? '' : 's'} per {rupees(p.earn.per_amount_paise)} (
        {p.earn.rounding}); a point is worth {rupees(p.point_value_paise)} at the till.
        {p.validity_days ? ` Points live ${p.validity_days} days.` : ' Points do not expire.'} Budget:{' '}
        {p.budget_points === null
          ? `${p.budget_used} points used, no cap`
          : `${p.budget_used} of ${p.budget_points} points used`}
        .
      </p>
      <h3>Earn rules</h3>
      {rules.data?.data.length ? (
        <ul>
          {rules.data.data.map((r) => (
            <li key={r.id}>
              {r.kind}
              {r.multiplier_bp ? ` ×${r.multiplier_bp / 10000}` : ''}
              {r.amount_paise ? ` from ${rupees(r.amount_paise)}` : ''}
              {r.points ? ` ${r.points} points` : ''}
              {r.description ? ` — ${r.description}` : ''}
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted small">Base rate only.</p>
      )}
      {p.owner_merchant_id && (
        <div className="preview">
          <label>
            Preview: a basket of ₹
            <input
              inputMode="decimal"
              value={amount}
              onChange={(e) => setAmount(e.target.value)}
              aria-describedby={`pv-${p.id}`}
            />
          </label>
          <p id={`pv-${p.id}`} role="status" data-testid="earn-preview">
            {paise && quote.data
              ? `${rupees(paise)} earns ${quote.data.earn_points} points`
              : quote.error
                ? (quote.error as Error).message
                : ' '}
          </p>
        </div>
      )}
    </div>
  );
}

function Customer({ merchants }: { merchants: string[] }) {
  const [merchant, setMerchant] = useState('');
  const [who, setWho] = useState('');
  const [query, setQuery] = useState<{ merchant_id: string; vpa?: string; phone?: string }>();
  const m = merchant || merchants[0] || '';
  const balance = useQuery({
    queryKey: ['balance', query],
    enabled: !!query,
    queryFn: async () => {
      try {
        return await get<Balance>('/v1/rewards/balance' + qs(query!));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }
    },
  });
  const statement = useQuery({
    queryKey: ['statement', query],
    enabled: !!query && !!balance.data,
    queryFn: () => get<Page<Movement>>('/v1/rewards/statement' + qs({ ...query!, limit: 20 })),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const v = who.trim();
    setQuery({ merchant_id: m, ...(v.includes('@') ? { vpa: v } : { phone: v }) });
  };
  return (
    <form className="card" onSubmit={submit} aria-label="Customer balance">
      <h2>A customer's points</h2>
      <label>
        Merchant
        <input value={m} onChange={(e) => setMerchant(e.target.value.trim())} placeholder="mer_…" required />
      </label>
      <label>
        VPA or phone
        <input value={who} onChange={(e) => setWho(e.target.value)} placeholder="name@bank or +91…" required />
      </label>
      <button type="submit">Look up</button>
      <ErrorNote error={balance.error ?? statement.error} />
      {balance.data === null && <p className="muted">No points for this customer.</p>}
      {balance.data && (
        <p role="status">
          Available {balance.data.available} points, pending {balance.data.pending}, expiring in 30 days{' '}
          {balance.data.expiring_30d}.
        </p>
      )}
      {statement.data && (
        <ul>
          {statement.data.data.map((mv) => (
            <li key={mv.id}>
              {when(mv.created_at)} {mv.kind} {mv.points > 0 ? '+' : ''}
              {mv.points}
              {mv.payment_id ? ` (${mv.payment_id})` : ''}
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}
