import { useMemo } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { AlignedData } from 'uplot';
import { get } from '../api.ts';
import { Bars, TimeChart } from '../components/Chart.tsx';
import { ErrorNote } from '../components/DataTable.tsx';
import { ReconAging } from '../components/ReconAging.tsx';
import { useCan } from '../session.tsx';
import { when } from '../format.ts';

// The overview refreshes itself every 10 seconds from GET /v1/payments/stats (one query, a few
// aggregates over the last hour, scoped to the operator's merchant when they have one).

interface Stats {
  window_minutes: number;
  generated_at: string;
  per_minute: { minute: string; created: number; succeeded: number; failed: number }[];
  by_bank: { bank_code: string; completed: number; succeeded: number; success_rate: number | null }[];
  completion_ms: { p50: number | null; p95: number | null; count: number };
  pending: { count: number; oldest_created_at: string | null; needs_reconciliation: number };
  active_terminals: number;
}

const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
const ms = (v: number | null) => (v === null ? '—' : v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(1)} s`);

export function Overview() {
  const can = useCan();
  const stats = useQuery({
    queryKey: ['stats', 60],
    queryFn: () => get<Stats>('/v1/payments/stats?window_minutes=60'),
    refetchInterval: 10_000,
  });
  const series = useMemo<AlignedData>(() => {
    const s = stats.data;
    if (!s) return [[], [], [], []];
    // Every minute of the window, zeros included, so quiet minutes show as quiet.
    const byMinute = new Map(s.per_minute.map((m) => [Date.parse(m.minute) / 1000, m]));
    const end = Math.floor(Date.parse(s.generated_at) / 60_000) * 60;
    const xs: number[] = [];
    for (let t = end - (s.window_minutes - 1) * 60; t <= end; t += 60) xs.push(t);
    return [
      xs,
      xs.map((t) => byMinute.get(t)?.created ?? 0),
      xs.map((t) => byMinute.get(t)?.succeeded ?? 0),
      xs.map((t) => byMinute.get(t)?.failed ?? 0),
    ];
  }, [stats.data]);
  const s = stats.data;
  return (
    <section aria-labelledby="ov">
      <h1 id="ov">Overview</h1>
      <ErrorNote error={stats.error} />
      {s && (
        <>
          <div className="tiles">
            <div className="tile">
              <span className="tile-label">Payments, last hour</span>
              <span className="tile-value" data-testid="tile-payments">
                {s.per_minute.reduce((a, m) => a + m.created, 0)}
              </span>
            </div>
            <div className="tile">
              <span className="tile-label">p95 completion</span>
              <span className="tile-value" data-testid="tile-p95">
                {ms(s.completion_ms.p95)}
              </span>
              <span className="small muted">
                p50 {ms(s.completion_ms.p50)} · {s.completion_ms.count} paid
              </span>
            </div>
            <div className="tile">
              <span className="tile-label">Pending backlog</span>
              <span className="tile-value" data-testid="tile-pending">
                {s.pending.count}
              </span>
              <span className="small muted">oldest {when(s.pending.oldest_created_at)}</span>
            </div>
            <TerminalsTile tookPayments={s.active_terminals} />
            <div className="tile">
              <span className="tile-label">Need reconciliation</span>
              <span className="tile-value">{s.pending.needs_reconciliation}</span>
            </div>
          </div>
          <div className="grid2">
            <TimeChart
              title="Payments per minute (last hour)"
              data={series}
              series={[
                { label: 'Created', stroke: '#1f5fbf' },
                { label: 'Succeeded', stroke: '#17803d' },
                { label: 'Failed or expired', stroke: '#b3261e' },
              ]}
            />
            <Bars
              title="Success rate by bank (completed payments, last hour)"
              format={pct}
              rows={s.by_bank
                .filter((b) => b.success_rate !== null)
                .map((b) => ({ label: b.bank_code, value: b.success_rate!, note: `${b.succeeded}/${b.completed}` }))}
            />
          </div>
          {can('recon:read') && <ReconAging />}
          <p className="small muted">Updated {when(s.generated_at)}; refreshes every 10 s.</p>
        </>
      )}
    </section>
  );
}

interface Presence {
  online: number;
  offline: number;
  never_seen: number;
  total: number;
}

/**
 * Terminals online now (GET /v1/terminals/presence: what the gateway records from the broker), and
 * how many took a payment in the hour. Without terminals:read, only the latter.
 */
function TerminalsTile({ tookPayments }: { tookPayments: number }) {
  const can = useCan();
  const allowed = can('terminals:read');
  const presence = useQuery({
    queryKey: ['terminals', 'presence'],
    queryFn: () => get<Presence>('/v1/terminals/presence'),
    refetchInterval: 10_000,
    enabled: allowed,
  });
  const took = <span data-testid="tile-terminals">{tookPayments}</span>;
  if (!allowed)
    return (
      <div className="tile">
        <span className="tile-label">Terminals taking payments</span>
        <span className="tile-value">{took}</span>
        <span className="small muted">at least one payment in the last hour</span>
      </div>
    );
  const p = presence.data;
  return (
    <div className="tile">
      <span className="tile-label">Terminals online</span>
      <span className="tile-value" data-testid="tile-terminals-online">
        {p ? p.online : '…'}
      </span>
      <span className="small muted">
        {p ? `of ${p.total} active · ` : ''}
        {took} took a payment in the last hour
      </span>
    </div>
  );
}
