import { randomInt } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../platform/clock.ts';
import { parseRupees } from '../../platform/money.ts';
import { SimError, type SimLogger } from './engine.ts';
import { SIM_PATHS, type WireCreditRequest, type WireTxnResponse } from './wire.ts';

// The simulated bank's push credits: money from the merchant's (Tillpoint's) account to a
// customer's VPA, not against a debit (connectors' pushCredit; settlement pays the RBI's
// compensation with it). Kept apart from engine.ts: its own book, idempotent on credit_ref, no
// callback (the answer or a status query tells). A payee VPA starting `sim-nocredit` is refused
// (U31, credit failed: a closed or frozen account) and one starting `sim-creditpending` stays
// pending (01) for one status query before it is paid, so tests can play both.

interface Credit {
  creditRef: string;
  payeeVpa: string;
  amountPaise: number;
  note: string;
  /** The payment the credit relates to (a compensation's), when the caller named it. */
  relatedTxnRef?: string;
  responseCode: string;
  bankRef?: string;
  message: string;
  /** A pending credit turns final on the next status query. */
  pending: boolean;
  decidedAt: number;
}

const REF_RE = /^[A-Za-z0-9_-]{1,64}$/;
const VPA_RE = /^[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$/;

function text(body: Record<string, unknown>, name: string, re?: RegExp, max = 200): string {
  const v = body[name];
  if (typeof v !== 'string' || v === '') throw new SimError(400, 'invalid_request', `${name} is required`);
  if (v.length > max || (re && !re.test(v)))
    throw new SimError(400, 'invalid_request', `${name} is not in the expected format`);
  return v;
}

export function createSimCredits(o: { clock: Clock; logger?: SimLogger }) {
  const credits = new Map<string, Credit>();
  const log = o.logger ?? { info() {}, warn() {} };
  const answer = (c: Credit): WireTxnResponse => ({
    credit_ref: c.creditRef,
    response_code: c.responseCode,
    ...(c.bankRef ? { bank_ref: c.bankRef } : {}),
    message: c.message,
  });

  return {
    credit(body: Record<string, unknown>): WireTxnResponse {
      const creditRef = text(body, 'credit_ref', REF_RE, 64);
      const payeeVpa = text(body, 'payee_vpa', VPA_RE, 320);
      const note = text(body, 'note');
      let amountPaise: number;
      try {
        amountPaise = parseRupees(text(body, 'amount'));
      } catch {
        throw new SimError(400, 'invalid_request', 'amount must be rupees with up to two decimals');
      }
      if (amountPaise <= 0) throw new SimError(400, 'invalid_request', 'amount must be positive');
      const related = body.related_txn_ref === undefined ? undefined : text(body, 'related_txn_ref', REF_RE, 64);
      if (body.currency !== undefined && body.currency !== 'INR')
        throw new SimError(400, 'invalid_request', 'currency must be INR');
      const done = credits.get(creditRef);
      if (done) {
        // Idempotent on credit_ref: a resend learns the first answer and never pays twice.
        if (done.payeeVpa !== payeeVpa || done.amountPaise !== amountPaise)
          throw new SimError(409, 'duplicate_credit_ref', 'credit_ref already used');
        return answer(done);
      }
      const refused = /^sim-nocredit/i.test(payeeVpa);
      const pending = !refused && /^sim-creditpending/i.test(payeeVpa);
      const c: Credit = {
        creditRef,
        payeeVpa,
        amountPaise,
        note,
        ...(related ? { relatedTxnRef: related } : {}),
        responseCode: refused ? 'U31' : pending ? '01' : '00',
        ...(refused || pending
          ? {}
          : { bankRef: String(randomInt(100_000, 999_999)) + String(randomInt(100_000, 999_999)) }),
        message: refused ? 'credit failed: beneficiary account closed' : pending ? 'credit initiated' : 'credited',
        pending,
        decidedAt: o.clock.now().getTime(),
      };
      credits.set(creditRef, c);
      log.info({ credit_ref: creditRef, code: c.responseCode }, 'bank sim: push credit decided');
      return answer(c);
    },

    status(body: Record<string, unknown>): WireTxnResponse {
      const ref = text(body, 'credit_ref', REF_RE, 64);
      const c = credits.get(ref);
      if (!c) return { credit_ref: ref, response_code: 'U48', message: 'credit id not present' };
      if (c.pending) {
        const now = answer(c);
        c.pending = false;
        c.responseCode = '00';
        c.message = 'credited';
        c.bankRef = String(randomInt(100_000, 999_999)) + String(randomInt(100_000, 999_999));
        c.decidedAt = o.clock.now().getTime();
        return now;
      }
      return answer(c);
    },

    /** Credits paid, for the settlement file: when, for how much, and the payment they relate to. */
    settled(): SettledCredit[] {
      return [...credits.values()]
        .filter((c) => c.responseCode === '00')
        .map((c) => ({
          creditRef: c.creditRef,
          bankRef: c.bankRef ?? '',
          amountPaise: c.amountPaise,
          relatedTxnRef: c.relatedTxnRef,
          decidedAt: c.decidedAt,
        }));
    },

    /** Credits paid, for tests: reference -> paise. */
    paid(): Map<string, number> {
      return new Map(
        [...credits.values()].filter((c) => c.responseCode === '00').map((c) => [c.creditRef, c.amountPaise]),
      );
    },
  };
}

export type SimCredits = ReturnType<typeof createSimCredits>;

export interface SettledCredit {
  creditRef: string;
  bankRef: string;
  amountPaise: number;
  relatedTxnRef?: string;
  decidedAt: number;
}

/** The simbank routes for push credits; `signed` is the plugin's signature check around a handler. */
export function registerSimCreditRoutes(
  app: FastifyInstance,
  credits: SimCredits,
  signed: (
    fn: (b: Record<string, unknown>) => unknown,
  ) => (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
) {
  app.post(
    SIM_PATHS.credits,
    signed((b) => credits.credit(b as Partial<WireCreditRequest> as Record<string, unknown>)),
  );
  app.post(
    SIM_PATHS.creditStatus,
    signed((b) => credits.status(b)),
  );
}
