import { useQuery } from '@tanstack/react-query';
import { get } from '../api.ts';
import { rupees, when } from '../format.ts';
import { Link } from '../router.tsx';
import { ErrorNote } from './DataTable.tsx';

// The overview's card of reconciliation exceptions by time left to their deadline (GET
// /v1/recon/aging: the RBI's T + 5 days for each exception's transaction), for operators who
// read reconciliation. Refreshes with the rest of the overview.

interface Aging {
  generated_at: string;
  tat_days: number;
  buckets: {
    bucket: 'overdue' | 'due_24h' | 'due_48h' | 'later';
    kind: string;
    count: number;
    amount_paise: number;
    oldest_created_at: string;
    earliest_deadline_at: string;
  }[];
}

const BUCKETS: [Aging['buckets'][number]['bucket'], string][] = [
  ['overdue', 'Past the deadline'],
  ['due_24h', 'Due within 24 hours'],
  ['due_48h', 'Due within 48 hours'],
  ['later', 'More than 48 hours left'],
];

export function ReconAging() {
  const aging = useQuery({
    queryKey: ['recon-aging'],
    queryFn: () => get<Aging>('/v1/recon/aging'),
    refetchInterval: 10_000,
  });
  const a = aging.data;
  const sum = (b: string) => {
    const rows = a?.buckets.filter((x) => x.bucket === b) ?? [];
    return {
      count: rows.reduce((n, r) => n + r.count, 0),
      amount: rows.reduce((n, r) => n + r.amount_paise, 0),
      kinds: rows.map((r) => `${r.kind.replace('_', ' ')} ${r.count}`).join(', '),
    };
  };
  const earliest = a?.buckets.map((b) => b.earliest_deadline_at).sort()[0];
  return (
    <section className="chart aging-card" aria-labelledby="aging-h" data-testid="recon-aging">
      <h2 id="aging-h">Reconciliation exceptions against their deadlines</h2>
      <ErrorNote error={aging.error} />
      {a && (
        <>
          <table className="aging">
            <caption className="sr-only">Unresolved exceptions by time left to their deadline</caption>
            <thead>
              <tr>
                <th scope="col">Time left</th>
                <th scope="col">Exceptions</th>
                <th scope="col">Amount</th>
                <th scope="col">Kinds</th>
              </tr>
            </thead>
            <tbody>
              {BUCKETS.map(([b, label]) => {
                const s = sum(b);
                return (
                  <tr key={b}>
                    <th scope="row" className={b === 'overdue' && s.count ? 'late' : undefined}>
                      {label}
                    </th>
                    <td data-testid={`aging-${b}`}>{s.count}</td>
                    <td>{rupees(s.amount)}</td>
                    <td className="small">{s.kinds || '—'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <p className="small muted">
            Deadline: end of T + {a.tat_days} days (IST). Earliest unresolved: {when(earliest)}.{' '}
            <Link to="/reconciliation">Open the queue</Link>
          </p>
        </>
      )}
    </section>
  );
}
