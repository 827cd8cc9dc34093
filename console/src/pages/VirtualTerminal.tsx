import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import QRCode from 'qrcode';
import { FINAL, get, post, type Page, type Payment, type Terminal } from '../api.ts';
import { ErrorNote } from '../components/DataTable.tsx';
import { parseRupees, rupees, shortId } from '../format.ts';
import { Link } from '../router.tsx';

// A till in the browser: pick a terminal, enter an amount, show the dynamic QR (the UPI link the
// API built, drawn as a real QR code), and follow the payment until the bank's answer arrives.
// The result comes by polling the payment once a second while it is open (no SSE endpoint yet).

export default function VirtualTerminal() {
  const terminals = useQuery({
    queryKey: ['terminals', 'active'],
    queryFn: () => get<Page<Terminal>>('/v1/terminals?status=active&limit=200'),
  });
  const [terminalId, setTerminalId] = useState('');
  const [amount, setAmount] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState<string>();
  const create = useMutation({
    mutationFn: (v: { terminal_id: string; amount: number; note?: string; key: string }) =>
      post<Payment>(
        '/v1/payments',
        {
          terminal_id: v.terminal_id,
          amount: v.amount,
          currency: 'INR',
          method: 'upi_qr',
          ...(v.note ? { note: v.note } : {}),
        },
        { idempotencyKey: v.key },
      ),
  });
  const chosen = terminalId || terminals.data?.data[0]?.id || '';
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const paise = parseRupees(amount);
    if (!paise) return setError('Enter an amount in rupees, e.g. 149.00');
    if (!chosen) return setError('Pick a terminal');
    setError(undefined);
    create.mutate({ terminal_id: chosen, amount: paise, note: note.trim() || undefined, key: crypto.randomUUID() });
  };
  return (
    <section aria-labelledby="vt">
      <h1 id="vt">Virtual terminal</h1>
      <div className="grid2">
        <form className="card" onSubmit={submit} aria-label="New QR payment">
          <label>
            Terminal
            <select value={chosen} onChange={(e) => setTerminalId(e.target.value)} required>
              {terminals.data?.data.map((t) => (
                <option key={t.id} value={t.id}>
                  {(t.label as string | null) ?? 'Terminal'} · {shortId(t.id)}
                </option>
              ))}
            </select>
          </label>
          <label>
            Amount (₹)
            <input
              inputMode="decimal"
              placeholder="149.00"
              value={amount}
              onChange={(e) => setAmount(e.target.value)}
              required
            />
          </label>
          <label>
            Note (optional)
            <input maxLength={50} value={note} onChange={(e) => setNote(e.target.value)} />
          </label>
          <button type="submit" disabled={create.isPending || !chosen}>
            Show QR
          </button>
          {error && (
            <p role="alert" className="error">
              {error}
            </p>
          )}
          <ErrorNote error={terminals.error ?? create.error} />
        </form>
        {create.data && <PaymentQr key={create.data.id} created={create.data} />}
      </div>
    </section>
  );
}

function PaymentQr({ created }: { created: Payment }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const live = useQuery({
    queryKey: ['payment', created.id],
    queryFn: () => get<Payment>(`/v1/payments/${created.id}`),
    initialData: created,
    refetchInterval: (q) => (q.state.data && FINAL.has(q.state.data.status) ? false : 1_000),
  });
  const p = live.data;
  useEffect(() => {
    if (created.upi_uri && canvas.current)
      void QRCode.toCanvas(canvas.current, created.upi_uri, { errorCorrectionLevel: 'M', margin: 4, width: 264 });
  }, [created.upi_uri]);
  const sim = useQuery({
    queryKey: ['sim'],
    queryFn: async () => (await fetch('/sim/health')).ok,
    staleTime: Infinity,
    retry: false,
  });
  const pay = useMutation({
    mutationFn: async () => {
      const res = await fetch('/sim/v1/customer-payments', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ upi_uri: created.upi_uri, payer_vpa: 'demo.customer@okaxis' }),
      });
      if (!res.ok) throw new Error(`The simulator answered ${res.status}`);
    },
  });
  const done = FINAL.has(p.status);
  return (
    <div className="card qr-card">
      <h2>{rupees(p.amount)}</h2>
      {!done ? (
        <>
          <canvas ref={canvas} data-testid="upi-qr" role="img" aria-label={`UPI QR code for ${rupees(p.amount)}`} />
          <p role="status" aria-live="polite">
            Waiting for the customer to pay…{' '}
            <span className="muted small">(expires {new Date(p.expires_at).toLocaleTimeString('en-IN')})</span>
          </p>
          {sim.data && (
            <button type="button" className="secondary" onClick={() => pay.mutate()} disabled={pay.isPending}>
              Pay as the customer (bank simulator)
            </button>
          )}
          <ErrorNote error={pay.error} />
        </>
      ) : (
        <p
          role="status"
          aria-live="polite"
          data-testid="vt-result"
          className={p.status === 'succeeded' ? 'ok big' : 'error big'}
        >
          {p.status === 'succeeded'
            ? 'Paid'
            : p.status === 'failed'
              ? 'Declined'
              : p.status === 'expired'
                ? 'Expired'
                : p.status}
        </p>
      )}
      <p>
        <Link to={`/payments/${p.id}`}>Open payment {shortId(p.id)}</Link>
      </p>
    </div>
  );
}
