import { actorOf, type AuditWriter } from '../audit/index.ts';
import type { PaymentHooks } from './payments.types.ts';

// Payment events the audit trail records, each in the payment's own transaction: a payment
// holds personal data (the payer's VPA), and a refund moves money back on someone's say-so.
// Successes and expiries driven by the bank are not people's actions; the payment's own
// event history keeps them. They live here, with the events they describe, as identity's and
// merchants' audit records live with theirs: payments depends on the audit module, never the
// reverse.

export function auditPaymentHooks(audit: AuditWriter): PaymentHooks {
  return {
    // Written by the payment's own insert statement (a create is then one round trip). The actor
    // is whoever asked: an API key or operator over HTTP, a terminal over MQTT (which has no
    // request context of its own).
    createdAuditEvents(payment, by) {
      return [
        audit.prepare({
          action: 'payment.created',
          actor: actorOf(by),
          resource: { type: 'payment', id: payment.id, merchant_id: payment.merchant_id },
          origin: { terminal_id: payment.terminal_id },
          details: { method: payment.method, amount: payment.amount, currency: payment.currency },
        }),
      ];
    },
    async onRefundRequested(tx, payment, refund) {
      await audit.record(tx, {
        action: 'refund.requested',
        resource: { type: 'refund', id: refund.id, merchant_id: payment.merchant_id },
        origin: { terminal_id: payment.terminal_id },
        details: { payment_id: payment.id, amount: refund.amount },
      });
    },
    async onRefunded(tx, payment, refund) {
      await audit.record(tx, {
        action: 'refund.succeeded',
        resource: { type: 'refund', id: refund.id, merchant_id: payment.merchant_id },
        details: { payment_id: payment.id, amount: refund.amount },
      });
    },
  };
}
