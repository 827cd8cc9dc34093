import { useState } from 'react';
import { get } from '../api.ts';

// "Check" on an audit record: fetch its inclusion proof and the trail's public key, check both
// in the browser (proof.ts, loaded on first use), and say plainly what held.
export function ProofButton({ id }: { id: string }) {
  const [state, setState] = useState<{ ok: boolean; text: string }>();
  const [busy, setBusy] = useState(false);
  async function check() {
    setBusy(true);
    try {
      const [{ checkProof }, proof, head] = await Promise.all([
        import('../proof.ts'),
        get<import('../proof.ts').InclusionProof>(`/v1/audit/events/${encodeURIComponent(id)}/proof`),
        get<{ public_key: string }>('/v1/audit/head'),
      ]);
      const r = await checkProof(proof, head.public_key);
      setState({ ok: r.ok, text: r.detail });
    } catch (e) {
      setState({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  }
  return (
    <span className="proof">
      <button
        type="button"
        className="secondary small-btn"
        onClick={check}
        disabled={busy}
        aria-label={`Check proof of ${id}`}
      >
        Check proof
      </button>
      {state && (
        <span role="status" className={state.ok ? 'ok' : 'error'} data-testid="proof-result">
          {state.ok ? '✓ ' : '✗ '}
          {state.text}
        </span>
      )}
    </span>
  );
}
