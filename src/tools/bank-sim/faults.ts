import type { WireCallback } from './wire.ts';

// Ways a real bank's MESSAGES go wrong while its books stay right, switched on and off while the
// simulator runs (control.ts: PUT /sim/v1/faults; the chaos run flips them on a schedule). The
// money is decided exactly as without them (engine.ts); only what Tillpoint is told, and when,
// changes. What each one does to a callback or an answer decided while it is on:
//
//   duplicate_callbacks      every callback is sent three times: at once, a second copy at the same
//                            moment (the two race), a third a second later; each signed afresh,
//                            as a bank's resend is
//   early_callbacks          the payment's callback arrives before the create was answered: a QR
//                            is paid by a simulated customer (its callback delivered) before the
//                            registration's answer leaves; a refund's answer waits 300 ms, so its
//                            callback (sent at once) is there first
//   out_of_order_callbacks   after the final callback, the stale ones a bank may still deliver:
//                            for a success a pending (01) and a failure (U30); for a failure a
//                            pending (01); for a refund's success a failure (U30)
//   contradicting_status     the callback is held back `holdMs` (past the first status check) and
//                            the status answers contradict it, then and ever after: a success is
//                            reported as failed (U30), a failure or a refund as still pending (01)
//
// The stale and contradicting messages never move money at the bank: its books (control.ts,
// GET /sim/v1/books) keep what it really did, for the chaos run to hold Tillpoint's ledger against.

export const BANK_FAULTS = [
  'duplicate_callbacks',
  'early_callbacks',
  'out_of_order_callbacks',
  'contradicting_status',
] as const;
export type BankFault = (typeof BANK_FAULTS)[number];

export interface Delivery {
  delivered: boolean;
  status?: number;
}

type Send = (payload: WireCallback) => Promise<Delivery>;
type Later = (ms: number, fn: () => void) => void;

const DEFAULT_HOLD_MS = 8000;

const refOf = (p: WireCallback) => (p.type === 'payment' ? `payment:${p.txn_ref}` : `refund:${p.refund_ref}`);

export function createSimFaults(initial: { modes?: BankFault[]; holdMs?: number } = {}) {
  let active = new Set<BankFault>(initial.modes ?? []);
  let holdMs = initial.holdMs ?? DEFAULT_HOLD_MS;
  /** What was done, for the chaos run's report. */
  const counts = {
    duplicate_callbacks_sent: 0,
    early_callbacks: 0,
    stale_callbacks_sent: 0,
    callbacks_held: 0,
    contradicting_status_answers: 0,
  };
  /** Status answers that contradict the callback: reference → the code the status gives instead. */
  const contradicted = new Map<string, string>();

  function staleAfter(p: WireCallback): WireCallback[] {
    const as = (response_code: string, message: string): WireCallback => {
      const { bank_ref: _b, ...rest } = p as WireCallback & { payer_vpa?: string };
      const stale = { ...rest, response_code, message } as WireCallback & { payer_vpa?: string };
      delete stale.payer_vpa;
      return stale;
    };
    if (p.type === 'payment')
      return p.response_code === '00'
        ? [as('01', 'pending (stale)'), as('U30', 'debit failed (stale)')]
        : [as('01', 'pending (stale)')];
    return p.response_code === '00' ? [as('U30', 'refund failed (stale)')] : [];
  }

  async function fanOut(p: WireCallback, modes: Set<BankFault>, send: Send, later: Later): Promise<Delivery> {
    const first = send(p);
    if (modes.has('duplicate_callbacks')) {
      counts.duplicate_callbacks_sent += 2;
      void send(p);
      later(1000, () => void send(p));
    }
    if (!modes.has('out_of_order_callbacks')) return first;
    const r = await first;
    for (const stale of staleAfter(p)) {
      counts.stale_callbacks_sent++;
      await send(stale);
    }
    return r;
  }

  return {
    get active(): BankFault[] {
      return [...active];
    },
    get holdMs() {
      return holdMs;
    },
    counts,
    on: (f: BankFault) => active.has(f),
    set(modes: BankFault[], hold?: number) {
      active = new Set(modes);
      if (hold !== undefined) holdMs = hold;
    },
    /**
     * Sends a callback the way the modes on at this moment say (the engine calls it instead of
     * sending). Resolves with the first delivery, or at once ({ delivered: false }) when it is held.
     */
    deliver(p: WireCallback, send: Send, later: Later): Promise<Delivery> {
      const modes = new Set(active);
      if (modes.has('contradicting_status') && p.response_code !== '01') {
        const contradiction = p.type === 'payment' && p.response_code === '00' ? 'U30' : '01';
        contradicted.set(refOf(p), contradiction);
        counts.callbacks_held++;
        later(holdMs, () => void fanOut(p, modes, send, later));
        return Promise.resolve({ delivered: false });
      }
      return fanOut(p, modes, send, later);
    },
    /** The status answer as the bank gives it: contradicted when the callback's was (see above). */
    statusAnswer<T extends { response_code: string; message?: string; payer_vpa?: string }>(
      kind: 'payment' | 'refund',
      ref: string,
      answer: T,
    ): T {
      const code = contradicted.get(`${kind}:${ref}`);
      if (code === undefined || answer.response_code === code) return answer;
      counts.contradicting_status_answers++;
      const out = { ...answer, response_code: code, message: 'contradicts the callback (simulated)' };
      delete out.payer_vpa;
      return out;
    },
    markEarly() {
      counts.early_callbacks++;
    },
  };
}

export type SimFaults = ReturnType<typeof createSimFaults>;

export function parseFaultModes(v: unknown): BankFault[] {
  if (!Array.isArray(v) || v.some((m) => !(BANK_FAULTS as readonly string[]).includes(m as string)))
    throw new RangeError(`modes must be a list of: ${BANK_FAULTS.join(', ')}`);
  return v as BankFault[];
}
