-- Settlement (src/modules/settlement/README.md), two gaps closed:
--   1. The RBI's compensation for a late reversal (₹100 per day of delay, RBI/2019-20/67) is paid to
--      the customer by a push credit to their VPA (the banks' pushCredit call), without a claim.
--      Each compensation row (one per payment and day) is one credit with its own reference; the
--      bank is idempotent on it, so a credit is never paid twice. States:
--        due      booked (expense -> compensation_payable), not sent yet, or sent and never received
--        pending  sent, the bank's answer was uncertain or pending: in transit, a status check asks
--        paid     the bank credited the customer (in transit -> bank_clearing)
--        failed   the bank refused it: still owed (back in compensation_payable), for an operator
--        legacy   booked before this migration straight to bank_clearing (no credit call existed)
--   2. The first cycle a fresh installation closes takes every payment before it into its payouts:
--      cycles.settles_from is where its payouts' window starts (NULL: the cycle's own start).
ALTER TABLE settlement.compensations
  ADD COLUMN status text NOT NULL DEFAULT 'legacy'
    CHECK (status IN ('legacy', 'due', 'pending', 'paid', 'failed')),
  ADD COLUMN credit_ref text UNIQUE CHECK (credit_ref ~ '^[A-Za-z0-9]{1,35}$'),
  ADD COLUMN attempts int NOT NULL DEFAULT 0,
  ADD COLUMN status_checks int NOT NULL DEFAULT 0,
  -- When a worker may next take it: the claim pushes it out as a lease; NULL once final.
  ADD COLUMN next_attempt_at timestamptz,
  ADD COLUMN bank_ref text,
  ADD COLUMN response_code text,
  ADD COLUMN last_error text,
  ADD COLUMN paid_at timestamptz;
-- Rows from now on name their state; the default above only labels the rows already there.
ALTER TABLE settlement.compensations ALTER COLUMN status DROP DEFAULT;
ALTER TABLE settlement.compensations
  ADD CONSTRAINT compensations_credit_ref_unless_legacy CHECK ((status = 'legacy') = (credit_ref IS NULL)),
  ADD CONSTRAINT compensations_paid_at CHECK ((status = 'paid') = (paid_at IS NOT NULL));
CREATE INDEX compensations_due ON settlement.compensations (next_attempt_at) WHERE status IN ('due', 'pending');
CREATE INDEX compensations_by_paid ON settlement.compensations (paid_at) WHERE status = 'paid';

ALTER TABLE settlement.cycles ADD COLUMN settles_from timestamptz;
ALTER TABLE settlement.cycles ADD CONSTRAINT cycles_settles_from CHECK (settles_from IS NULL OR settles_from < starts_at);
