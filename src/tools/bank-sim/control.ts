import type { FastifyInstance, FastifyRequest } from 'fastify';
import { formatRupees, parseRupees } from '../../platform/money.ts';
import type { SimEngine } from './engine.ts';
import { BANK_FAULTS, parseFaultModes, type SimFaults } from './faults.ts';
import { SIM_PATHS } from './wire.ts';

// The simulator's books and its message faults, over HTTP (unsigned, like the customer's side and
// the settlement files: this is a test bank, and only a simulator started with --faults has the
// switch).
//
//   GET /sim/v1/books    what the bank did, per reference: every payment it decided (debited or
//                        not) and every refund it paid, from its own state (never from the
//                        messages it sent); the chaos run holds Tillpoint's ledger against it
//   GET /sim/v1/faults   the message faults on, their hold time and what they did (faults.ts)
//   PUT /sim/v1/faults   { "modes": [...], "hold_ms"?: n } switches them, at once

export const CONTROL_PATHS = { books: '/v1/books', faults: '/v1/faults' } as const;

/** Who pays a QR when early_callbacks has the bank's customer pay before the registration is answered. */
const EARLY_PAYER = 'early.payer@okaxis';

export function registerBooksRoute(app: FastifyInstance, engine: SimEngine) {
  app.get(CONTROL_PATHS.books, async () => {
    const payments: { txn_ref: string; amount_paise: number; debited: boolean }[] = [];
    const refunds: { refund_ref: string; amount_paise: number }[] = [];
    for (const r of engine.settlementRecords()) {
      if (r.kind === 'payment') payments.push({ txn_ref: r.ref, amount_paise: r.amountPaise, debited: r.succeeded });
      else refunds.push({ refund_ref: r.ref, amount_paise: r.amountPaise });
    }
    return { payments, refunds };
  });
}

export function registerFaultControl(app: FastifyInstance, engine: SimEngine, faults: SimFaults) {
  const view = () => ({ modes: faults.active, hold_ms: faults.holdMs, known: BANK_FAULTS, counts: faults.counts });
  app.get(CONTROL_PATHS.faults, async () => view());
  app.put(CONTROL_PATHS.faults, async (req, reply) => {
    const b = (req.body ?? {}) as { modes?: unknown; hold_ms?: unknown };
    let modes;
    try {
      modes = parseFaultModes(b.modes);
    } catch (e) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: (e as Error).message } });
    }
    const hold = b.hold_ms;
    if (hold !== undefined && (!Number.isSafeInteger(hold) || (hold as number) < 0 || (hold as number) > 600_000))
      return reply
        .code(400)
        .send({ error: { code: 'invalid_request', message: 'hold_ms must be an integer 0..600000' } });
    faults.set(modes, hold as number | undefined);
    return view();
  });

  const route = (req: FastifyRequest) => (req.url.includes('/psp/') ? '' : req.url.split('?')[0]);
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.method !== 'POST' || reply.statusCode !== 200 || typeof payload !== 'string') return payload;
    const path = route(req);
    if (path.endsWith(SIM_PATHS.txnStatus) || path.endsWith(SIM_PATHS.refundStatus)) {
      const answer = JSON.parse(payload) as { txn_ref?: string; refund_ref?: string; response_code: string };
      const refund = path.endsWith(SIM_PATHS.refundStatus);
      const ref = refund ? answer.refund_ref : answer.txn_ref;
      return ref ? JSON.stringify(faults.statusAnswer(refund ? 'refund' : 'payment', ref, answer)) : payload;
    }
    if (path.endsWith(SIM_PATHS.intents) && faults.on('early_callbacks')) {
      // The customer scans and pays while the registration's answer is still on its way: the
      // payment's callback is delivered (first attempt) before this answer leaves.
      const b = req.body as { txn_ref: string; payee_vpa: string; amount: string };
      const uri = `upi://pay?pa=${encodeURIComponent(b.payee_vpa)}&tr=${b.txn_ref}&am=${formatRupees(parseRupees(b.amount))}&cu=INR`;
      faults.markEarly();
      await engine.customerPayment({ upi_uri: uri, payer_vpa: EARLY_PAYER }).catch(() => undefined);
      return payload;
    }
    if (path.endsWith(SIM_PATHS.refunds) && faults.on('early_callbacks')) {
      // The refund's callback was sent when it was decided; the answer waits so it arrives first.
      faults.markEarly();
      await new Promise((r) => setTimeout(r, 300));
    }
    return payload;
  });
}
