-- Refunds the bank's answers leave unsettled, flagged for reconciliation as payments are.
--
-- A refund whose bank keeps answering pending or "no such transaction" (U48) is asked
-- STATUS_CHECK_MAX times, then flagged; a deemed answer (U67/U68/...) flags it at once; a success
-- for a refund already closed as failed flags it too (the customer may have been refunded after
-- the reserved amount was released). A flagged refund gets no more status checks and keeps its
-- amount reserved on the payment; its payment is flagged as well, so it is listed with
-- GET /v1/payments?needs_reconciliation=true and counted by the reconciliation gauge.
ALTER TABLE payments.refunds
  ADD COLUMN needs_reconciliation  boolean     NOT NULL DEFAULT false,
  ADD COLUMN reconciliation_reason text,
  ADD COLUMN flagged_at            timestamptz;
CREATE INDEX refunds_reconcile ON payments.refunds (id) WHERE needs_reconciliation;
