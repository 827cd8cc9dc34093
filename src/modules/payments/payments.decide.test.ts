import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BankOutcome, BankResult } from '../banks/index.ts';
import {
  decide,
  decideRefund,
  refundRefusal,
  refundedPaymentStatus,
  type DecideContext,
  type PaymentAction,
  type PaymentFacts,
  type RefundAction,
  type Source,
} from './payments.decide.ts';
import { PAYMENT_STATUSES, PAID_STATUSES, canTransition, type PaymentStatus } from './payments.state.ts';
import type { RefundRow } from './payments.repo.ts';

// The decisions on their own: every payment state × every bank outcome, in every context that
// changes the answer, against tables written out by hand; then properties over arbitrary input.

const OUTCOMES: readonly BankOutcome[] = ['success', 'pending', 'failed', 'expired', 'deemed', 'unknown', 'reversed'];
const SOURCES: readonly Source[] = ['api', 'callback', 'worker'];
const MAX = 3;
const AMOUNT = 500;

// What each cell of the tables below stands for.
const A: Record<string, (s: PaymentStatus, o: BankOutcome) => PaymentAction> = {
  S: (s) =>
    s === 'created'
      ? { kind: 'move', via: 'pending', to: 'succeeded', payer: true }
      : { kind: 'move', to: 'succeeded', payer: true },
  F: () => ({ kind: 'move', to: 'failed' }),
  E: () => ({ kind: 'move', to: 'expired' }),
  F69r: () => ({ kind: 'move', to: 'failed', responseCode: 'U69', detail: 'never reached the bank; closed at expiry' }),
  F69c: () => ({
    kind: 'move',
    to: 'failed',
    responseCode: 'U69',
    detail: 'never confirmed by the bank; closed at expiry',
  }),
  E69: () => ({ kind: 'move', to: 'expired', responseCode: 'U69', detail: 'expired unpaid' }),
  fD: () => ({ kind: 'flag', reason: 'deemed', detail: 'bank answered deemed; flagged for reconciliation' }),
  fU: () => ({ kind: 'flag', reason: 'unknown_at_bank', detail: 'bank answered unknown; flagged for reconciliation' }),
  fL: () => ({
    kind: 'flag',
    reason: 'success_after_close',
    detail: 'bank reported success for a closed payment; flagged for reconciliation',
    warn: 'late success for a closed payment',
  }),
  n: (_s, o) => ({ kind: 'note', detail: `ignored ${o} for a paid payment` }),
  end: () => ({ kind: 'end_checks' }),
  '-': () => ({ kind: 'none' }),
};

// Columns: success pending failed expired deemed unknown reversed.
const OPEN: Record<'plain' | 'expiry', Record<'created' | 'pending', string>> = {
  // A callback, a status check or the create's own answer.
  plain: {
    created: 'S  -    F  F  fD fU   F',
    pending: 'S  -    F  E  fD fU   F',
  },
  // The final check at expiry (expireIfOpen): what would stay open closes.
  expiry: {
    created: 'S  F69c F  F  fD F69r F',
    pending: 'S  E69  F  E  fD fU   F',
  },
};
// A final payment: answers change nothing, except a late success (flagged); a callback that
// contradicts a paid payment is kept in its history.
const CLOSED: Record<'other' | 'callback', Record<'paid' | 'unpaid', string>> = {
  other: { paid: '-  -  -  -  -  -  -', unpaid: 'fL -  -  -  -  -  -' },
  callback: { paid: '-  -  n  n  n  n  n', unpaid: 'fL -  -  -  -  -  -' },
};
const cells = (row: string) => row.trim().split(/\s+/);

function expected(s: PaymentStatus, o: BankOutcome, ctx: DecideContext, statusChecks: number): PaymentAction {
  const col = OUTCOMES.indexOf(o);
  let code: string;
  if (s === 'created' || s === 'pending') {
    code = cells(OPEN[ctx.expireIfOpen ? 'expiry' : 'plain'][s])[col];
    // After the last status check a pending payment is no longer asked about.
    if (!ctx.expireIfOpen && s === 'pending' && o === 'pending' && statusChecks >= ctx.statusCheckMax) code = 'end';
  } else {
    code = cells(
      CLOSED[ctx.source === 'callback' ? 'callback' : 'other'][PAID_STATUSES.includes(s) ? 'paid' : 'unpaid'],
    )[col];
  }
  return A[code](s, o);
}

const result = (outcome: BankOutcome, amountPaise?: number): BankResult => ({
  outcome,
  responseCode: 'XX',
  ...(amountPaise === undefined ? {} : { amountPaise }),
});

test('decide: every state × every outcome × every context, against the tables', () => {
  let cases = 0;
  for (const s of PAYMENT_STATUSES)
    for (const o of OUTCOMES)
      for (const source of SOURCES)
        for (const expireIfOpen of [false, true])
          for (const checks of [0, MAX - 1, MAX, MAX + 4])
            for (const reported of [undefined, AMOUNT, AMOUNT - 1, AMOUNT + 1]) {
              const ctx: DecideContext = { source, expireIfOpen, statusCheckMax: MAX };
              const p: PaymentFacts = { status: s, amount: AMOUNT, status_checks: checks };
              const got = decide(p, result(o, reported), ctx);
              const want =
                o === 'success' && reported !== undefined && reported !== AMOUNT
                  ? {
                      kind: 'flag',
                      reason: 'amount_mismatch',
                      detail: `bank reported success for ${reported} paise; flagged for reconciliation`,
                      warn: 'bank reported a different amount',
                    }
                  : expected(s, o, ctx, checks);
              assert.deepEqual(
                got,
                want,
                `${s} + ${o} (${JSON.stringify({ source, expireIfOpen, checks, reported })})`,
              );
              cases++;
            }
  assert.equal(cases, PAYMENT_STATUSES.length * OUTCOMES.length * 3 * 2 * 4 * 4);
});

test('decide: every move it makes is a legal transition', () => {
  for (const s of PAYMENT_STATUSES)
    for (const o of OUTCOMES)
      for (const expireIfOpen of [false, true]) {
        const a = decide({ status: s, amount: AMOUNT, status_checks: 0 }, result(o), {
          source: 'worker',
          expireIfOpen,
          statusCheckMax: MAX,
        });
        if (a.kind !== 'move') continue;
        if (a.via) assert.ok(canTransition(s, a.via) && canTransition(a.via, a.to), `${s} -> ${a.via} -> ${a.to}`);
        else assert.ok(canTransition(s, a.to), `${s} -> ${a.to}`);
      }
});

const REFUND_OUTCOMES = [...OUTCOMES, undefined] as const;
// Columns: success pending failed expired deemed unknown reversed (no certain answer).
const REFUND_TABLE: Record<RefundRow['status'], string> = {
  pending: 'ok  -  x  x  fD  -  x  -',
  succeeded: '-   -  -  -  -   -  -  -',
  failed: 'fL  -  -  -  -   -  -  -',
};
const RA: Record<string, RefundAction> = {
  ok: { kind: 'succeed' },
  x: { kind: 'fail' },
  fD: { kind: 'flag', reason: 'deemed' },
  fL: { kind: 'flag', reason: 'success_after_close', warn: 'late success for a closed refund' },
  fR: { kind: 'flag', reason: 'unresolved_at_bank' },
  '-': { kind: 'none' },
};

test('decideRefund: every refund state × every outcome × every source, against the table', () => {
  for (const status of ['pending', 'succeeded', 'failed'] as const)
    for (const [col, o] of REFUND_OUTCOMES.entries())
      for (const source of SOURCES)
        for (const checks of [0, MAX - 1, MAX, MAX + 4]) {
          let code = cells(REFUND_TABLE[status])[col];
          // Still pending (or unknown, or unanswered) after the last status check: flagged.
          if (status === 'pending' && code === '-' && source === 'worker' && checks >= MAX) code = 'fR';
          const got = decideRefund({ status, status_checks: checks }, o && result(o), {
            source,
            statusCheckMax: MAX,
          });
          assert.deepEqual(got, RA[code], `${status} + ${o ?? 'no answer'} (${source}, ${checks} checks)`);
        }
});

// ---- properties ----

const arbStatus = fc.constantFrom(...PAYMENT_STATUSES);
const arbOutcome = fc.constantFrom(...OUTCOMES);
const arbResult = fc.record(
  {
    outcome: arbOutcome,
    responseCode: fc.constantFrom('00', '01', 'ZA', 'U69', 'U67', 'U48', '32', 'XX'),
    amountPaise: fc.integer({ min: 1, max: 2_000 }),
    bankRef: fc.string({ maxLength: 12 }),
    payerVpa: fc.constant('payer@bank'),
  },
  { requiredKeys: ['outcome', 'responseCode'] },
);
const arbCtx = fc.record({
  source: fc.constantFrom(...SOURCES),
  expireIfOpen: fc.boolean(),
  statusCheckMax: fc.integer({ min: 0, max: 10 }),
});
const arbPayment = fc.record({
  status: arbStatus,
  amount: fc.integer({ min: 1, max: 2_000 }),
  status_checks: fc.integer({ min: 0, max: 12 }),
});

test('property: decide only ever makes legal moves, and never revives a failed or expired payment', () => {
  fc.assert(
    fc.property(arbPayment, arbResult, arbCtx, (p, r, ctx) => {
      const a = decide(p, r, ctx);
      if (p.status === 'failed' || p.status === 'expired') assert.notEqual(a.kind, 'move');
      if (a.kind === 'move') {
        const path = a.via ? [p.status, a.via, a.to] : [p.status, a.to];
        for (let i = 1; i < path.length; i++) assert.ok(canTransition(path[i - 1], path[i]), path.join(' -> '));
      }
    }),
    { numRuns: 2_000 },
  );
});

test('property: a late success and an amount mismatch are flagged for reconciliation, never booked', () => {
  fc.assert(
    fc.property(arbPayment, arbResult, arbCtx, (p, r, ctx) => {
      const a = decide(p, r, ctx);
      const mismatch = r.outcome === 'success' && r.amountPaise !== undefined && r.amountPaise !== p.amount;
      if (mismatch) assert.deepEqual([a.kind, a.kind === 'flag' && a.reason], ['flag', 'amount_mismatch']);
      else if (r.outcome === 'success' && (p.status === 'failed' || p.status === 'expired'))
        assert.deepEqual([a.kind, a.kind === 'flag' && a.reason], ['flag', 'success_after_close']);
      // Money is booked (a move to succeeded) only for a success of the amount asked.
      if (a.kind === 'move' && a.to === 'succeeded') assert.ok(r.outcome === 'success' && !mismatch);
      // Only a success may move a payment towards the money; nothing moves a paid payment.
      if (PAID_STATUSES.includes(p.status)) assert.ok(a.kind !== 'move' && a.kind !== 'end_checks');
    }),
    { numRuns: 2_000 },
  );
});

// payments.apply.ts takes a short way for a "paid" callback: a compare-and-set on status
// 'pending' and the reported amount, acting on what decide() says for such a payment without
// reading it. Sound only if nothing else decide() reads changes that answer.
test('property: for a pending payment of the reported amount, a success is decided the same whatever else it has', () => {
  fc.assert(
    fc.property(arbPayment, arbResult, arbCtx, arbCtx, (p, r, ctx, other) => {
      if (r.outcome !== 'success') return;
      const hoped = decide({ status: 'pending', amount: r.amountPaise ?? 0, status_checks: 0 }, r, ctx);
      if (hoped.kind !== 'move') return;
      const real = { ...p, status: 'pending' as const, amount: r.amountPaise ?? p.amount };
      assert.deepEqual(decide(real, r, { ...other, source: ctx.source }), hoped);
    }),
    { numRuns: 2_000 },
  );
});

test('property: refunds never exceed the amount, and the payment follows its refunds on legal moves', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('request' as const), amount: fc.integer({ min: 1, max: 1_200 }) }),
    fc.record({
      kind: fc.constant('answer' as const),
      which: fc.nat(),
      outcome: fc.option(arbOutcome, { nil: undefined }),
      source: fc.constantFrom(...SOURCES),
    }),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000 }),
      fc.constantFrom<PaymentStatus>('succeeded', 'failed', 'expired', 'pending'),
      fc.array(op, { maxLength: 30 }),
      (amount, start, ops) => {
        const now = new Date('2026-03-01T10:00:00Z');
        const p = { status: start, amount, refund_reserved: 0, refunded_amount: 0, completed_at: now };
        const refunds: { status: RefundRow['status']; amount: number; status_checks: number; flagged: boolean }[] = [];
        for (const o of ops) {
          if (o.kind === 'request') {
            const refused = refundRefusal(p, o.amount, now, 180);
            if (refused) {
              const left = p.amount - p.refund_reserved;
              assert.ok(!['succeeded', 'partially_refunded'].includes(p.status) || o.amount > left, refused.message);
              continue;
            }
            p.refund_reserved += o.amount;
            refunds.push({ status: 'pending', amount: o.amount, status_checks: 0, flagged: false });
          } else if (refunds.length > 0) {
            const r = refunds[o.which % refunds.length];
            // A flagged refund is no longer checked by the worker; a bank's callback still settles it.
            if (r.flagged && o.source === 'worker') continue;
            if (o.source === 'worker') r.status_checks++;
            const a = decideRefund(r, o.outcome && result(o.outcome), { source: o.source, statusCheckMax: MAX });
            if (a.kind === 'succeed') {
              r.status = 'succeeded';
              p.refunded_amount += r.amount;
              const to = refundedPaymentStatus(p);
              assert.ok(canTransition(p.status, to), `${p.status} -> ${to}`);
              p.status = to;
            } else if (a.kind === 'fail') {
              r.status = 'failed';
              p.refund_reserved -= r.amount;
            } else if (a.kind === 'flag') r.flagged = true;
          }
          assert.ok(p.refunded_amount <= p.refund_reserved, 'refunded within what was reserved');
          assert.ok(p.refund_reserved <= p.amount, 'never more reserved than the amount');
          const settled = refunds.filter((r) => r.status === 'succeeded').reduce((n, r) => n + r.amount, 0);
          assert.equal(p.refunded_amount, settled);
          const open = refunds.filter((r) => r.status === 'pending').reduce((n, r) => n + r.amount, 0);
          assert.equal(p.refund_reserved, settled + open, 'a failed refund releases exactly its amount');
          if (start !== 'succeeded') assert.equal(refunds.length, 0, 'an unpaid payment is never refunded');
        }
      },
    ),
    { numRuns: 1_000 },
  );
});

test('refundRefusal: the window, the state and what is left, with stable codes', () => {
  const now = new Date('2026-03-01T10:00:00Z');
  const paid = { status: 'succeeded' as const, amount: 1000, refund_reserved: 400, completed_at: now };
  assert.equal(refundRefusal(paid, 600, now, 180), undefined);
  assert.equal(refundRefusal(paid, 601, now, 180)?.code, 'refund_exceeds_payment');
  assert.deepEqual(refundRefusal(paid, 601, now, 180)?.details, { refundable_amount: 600 });
  assert.equal(refundRefusal({ ...paid, status: 'failed' }, 1, now, 180)?.code, 'payment_not_refundable');
  assert.equal(refundRefusal({ ...paid, status: 'refunded' }, 1, now, 180)?.code, 'payment_not_refundable');
  const late = new Date(now.getTime() + 181 * 86_400_000);
  assert.match(refundRefusal(paid, 1, late, 180)?.message ?? '', /refund window of 180 days/);
});
