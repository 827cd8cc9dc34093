-- Settlement: the money after the payment (src/modules/settlement/README.md).
--   reversals      customers debited for a payment that did not complete at the merchant (late
--                  success, amount mismatch, duplicate debit, an operator's decision), paid back
--                  through the bank by a refund-type call, each with its RBI deadline (T+5,
--                  RBI/2019-20/67) and the ₹100/day compensation posted past it
--   cycles         settlement cycles (cut-offs per day, key YYYY-MM-DD-C<n> in IST): what we expect
--                  per bank, compared with the bank file's totals (from recon/); differences are
--                  exceptions of their own
--   payouts        per merchant and cycle: the net owed, fees, holds, the bulk-transfer batch file,
--                  scheduled -> sent -> paid | returned
-- Only the settlement module writes these tables (reconciliation's own tables are recon_*, 0022).
CREATE SCHEMA IF NOT EXISTS settlement;

CREATE TABLE settlement.reversals (
  id               text        PRIMARY KEY,                          -- 'rvs_…'
  payment_id       text        NOT NULL,
  merchant_id      text        NOT NULL,
  bank_code        text        NOT NULL,
  original_txn_ref text        NOT NULL,
  reason           text        NOT NULL CHECK (reason IN ('late_success', 'amount_mismatch', 'duplicate_debit', 'operator')),
  source_ref       text        NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 200),
  amount           bigint      NOT NULL CHECK (amount > 0),
  -- What the customer was debited for this payment; a reversal never returns more.
  debited_amount   bigint      NOT NULL CHECK (amount <= debited_amount),
  -- The merchant was credited for this money (an operator reversing a paid payment): it comes out
  -- of merchant_payable and the merchant's payout, not out of money we never booked.
  charge_merchant  boolean     NOT NULL DEFAULT false,
  -- The refund-type reference sent to the bank; the bank is idempotent on it, so a retry of the
  -- same reversal never pays the customer twice.
  refund_ref       text        NOT NULL UNIQUE CHECK (refund_ref ~ '^[A-Za-z0-9]{1,35}$'),
  status           text        NOT NULL CHECK (status IN ('scheduled', 'pending', 'succeeded', 'failed')),
  txn_date         date        NOT NULL,                             -- T: the debit's calendar day in IST
  deadline_at      timestamptz NOT NULL,                             -- end of T+5 (IST)
  attempts         int         NOT NULL DEFAULT 0,                   -- refund calls sent
  status_checks    int         NOT NULL DEFAULT 0,
  -- When a worker may next take it: the claim pushes it out as a lease; NULL once final.
  next_attempt_at  timestamptz,
  bank_ref         text,
  response_code    text,
  last_error       text,
  compensation_days int        NOT NULL DEFAULT 0,                   -- days of delay compensated so far
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  UNIQUE (payment_id, reason, source_ref)
);
-- At most one reversal per payment at a time that is not failed: two requests (the worker's and
-- recon's, or two workers) can never both pay the customer back.
CREATE UNIQUE INDEX reversals_one_active ON settlement.reversals (payment_id) WHERE status <> 'failed';
CREATE INDEX reversals_due ON settlement.reversals (deadline_at, next_attempt_at) WHERE status IN ('scheduled', 'pending');
CREATE INDEX reversals_by_completion ON settlement.reversals (completed_at) WHERE status = 'succeeded';

CREATE TABLE settlement.reversal_events (
  id            bigserial   PRIMARY KEY,
  reversal_id   text        NOT NULL REFERENCES settlement.reversals (id),
  from_status   text,
  to_status     text        NOT NULL,
  response_code text,
  detail        text,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reversal_events_by_reversal ON settlement.reversal_events (reversal_id, id);

-- ₹100 for each day of delay past the deadline (RBI/2019-20/67), one row and one ledger entry per
-- day. Keyed by the payment: a customer is compensated once per day whatever number of reversal
-- attempts (a refused one, then an operator's new one) it took.
CREATE TABLE settlement.compensations (
  payment_id  text        NOT NULL,
  day         int         NOT NULL CHECK (day >= 1),
  reversal_id text        NOT NULL REFERENCES settlement.reversals (id),
  bank_code   text        NOT NULL,
  amount      bigint      NOT NULL CHECK (amount > 0),
  for_date    date        NOT NULL,                                  -- the IST day of delay it pays for
  posted_at   timestamptz NOT NULL,
  PRIMARY KEY (payment_id, day)
);
CREATE INDEX compensations_by_posted ON settlement.compensations (posted_at);

CREATE TABLE settlement.cycles (
  key        text        PRIMARY KEY CHECK (key ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}-C[0-9]{1,2}$'),
  starts_at  timestamptz NOT NULL,                                   -- exclusive
  ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),       -- inclusive: the cut-off
  closed_at  timestamptz NOT NULL
);

-- Per cycle and bank: what we expect (fixed at close) and what the bank's file says (when it came).
CREATE TABLE settlement.cycle_banks (
  cycle_key       text        NOT NULL REFERENCES settlement.cycles (key),
  bank_code       text        NOT NULL,
  expected_credit bigint      NOT NULL CHECK (expected_credit >= 0),
  expected_debit  bigint      NOT NULL CHECK (expected_debit >= 0),
  expected_lines  int         NOT NULL CHECK (expected_lines >= 0),
  status          text        NOT NULL CHECK (status IN ('awaiting_file', 'matched', 'difference')),
  file_id         text,
  file_credit     bigint,
  file_debit      bigint,
  file_lines      int,
  checked_at      timestamptz NOT NULL,
  PRIMARY KEY (cycle_key, bank_code),
  CHECK ((status = 'awaiting_file') = (file_id IS NULL))
);

-- A difference between our expectation and a bank's file for a cycle: work for an operator.
CREATE TABLE settlement.cycle_exceptions (
  id                text        PRIMARY KEY,                         -- 'sxc_…'
  cycle_key         text        NOT NULL REFERENCES settlement.cycles (key),
  bank_code         text        NOT NULL,
  file_id           text        NOT NULL,
  credit_difference bigint      NOT NULL,                            -- file − expected
  debit_difference  bigint      NOT NULL,
  lines_difference  int         NOT NULL,
  status            text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
  resolution        text,
  created_at        timestamptz NOT NULL,
  resolved_at       timestamptz,
  UNIQUE (cycle_key, bank_code, file_id),
  CHECK (credit_difference <> 0 OR debit_difference <> 0 OR lines_difference <> 0)
);

-- How and when each merchant is paid. No row = the defaults (T+1, zero MDR, no hold).
CREATE TABLE settlement.merchant_terms (
  merchant_id      text        PRIMARY KEY,
  schedule         text        NOT NULL DEFAULT 'T+1' CHECK (schedule IN ('T+0', 'T+1')),
  fee_bps          int         NOT NULL DEFAULT 0 CHECK (fee_bps BETWEEN 0 AND 10000),   -- MDR, basis points of payments
  fee_fixed_paise  bigint      NOT NULL DEFAULT 0 CHECK (fee_fixed_paise >= 0),          -- per successful payment
  under_review     boolean     NOT NULL DEFAULT false,              -- every payout held
  review_reason    text,
  disputed_hold    bigint      NOT NULL DEFAULT 0 CHECK (disputed_hold >= 0),           -- kept back from payouts
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE settlement.payout_batches (
  id          text        PRIMARY KEY,                               -- 'pob_…'
  format      text        NOT NULL,                                  -- the bulk-transfer mapping's name
  payouts     int         NOT NULL CHECK (payouts > 0),
  total       bigint      NOT NULL CHECK (total > 0),
  sha256      text        NOT NULL,
  file_name   text        NOT NULL,
  created_at  timestamptz NOT NULL
);

CREATE TABLE settlement.payouts (
  id              text        PRIMARY KEY,                           -- 'pyo_…'
  merchant_id     text        NOT NULL,
  cycle_key       text        NOT NULL REFERENCES settlement.cycles (key),
  bank_code       text        NOT NULL,                              -- the bank the transfer leaves from
  payments_paise  bigint      NOT NULL CHECK (payments_paise >= 0),
  payments_count  int         NOT NULL CHECK (payments_count >= 0),
  refunds_paise   bigint      NOT NULL CHECK (refunds_paise >= 0),
  reversals_paise bigint      NOT NULL CHECK (reversals_paise >= 0),
  fees_paise      bigint      NOT NULL CHECK (fees_paise >= 0),
  carried_paise   bigint      NOT NULL,                              -- brought forward from earlier payouts (held, short, returned)
  held_paise      bigint      NOT NULL CHECK (held_paise >= 0),      -- kept back for a disputed amount
  net_paise       bigint      NOT NULL,
  status          text        NOT NULL CHECK (status IN ('scheduled', 'held', 'nothing_due', 'sent', 'paid', 'returned')),
  due_at          timestamptz NOT NULL,
  batch_id        text        REFERENCES settlement.payout_batches (id),
  bank_ref        text,
  return_reason   text,
  carried_into    text,                                              -- the later payout that brought its remainder forward
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  UNIQUE (merchant_id, cycle_key),
  CHECK (net_paise = payments_paise - refunds_paise - reversals_paise - fees_paise + carried_paise - held_paise),
  CHECK ((status IN ('scheduled', 'held', 'sent', 'paid', 'returned')) = (net_paise > 0)),
  CHECK ((status IN ('sent', 'paid', 'returned')) = (batch_id IS NOT NULL))
);
CREATE INDEX payouts_due ON settlement.payouts (due_at) WHERE status = 'scheduled';
CREATE INDEX payouts_by_merchant ON settlement.payouts (merchant_id, id DESC);
