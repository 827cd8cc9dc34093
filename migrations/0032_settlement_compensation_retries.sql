-- Settlement (src/modules/settlement/README.md, "Compensation refused by the bank"): an operator
-- sends again a compensation credit the bank refused (status failed: a closed or frozen account).
-- Each retry is one row here. Carried out, it gives the compensation a new credit reference (the
-- bank is idempotent on the old one and would only refuse it again) and puts it back to due; the
-- worker sends it. To the payer's own VPA at once; to another VPA the operator gives, sealed by
-- the vault in payee_vpa_ct (never in clear), only when a second operator approves it (four eyes:
-- identity.approval_requests, kind compensation_retry; the kind is added to that table's CHECK
-- below, in this file, as this branch was given one migration number).
CREATE TABLE settlement.compensation_retries (
  id                text        PRIMARY KEY,                   -- cpr_…, time-ordered
  payment_id        text        NOT NULL,
  day               int         NOT NULL,
  -- The reference the bank refused, and the new one once the retry is carried out.
  failed_credit_ref text        NOT NULL,
  credit_ref        text        UNIQUE,
  -- Another VPA (sealed by the vault; purpose payer_vpa), NULL: the payer's own. Masked for views.
  payee_vpa_ct      text,
  payee_vpa_masked  text,
  reason            text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
  -- Who asked ("operator:opr_…", "api_key:…", "cli:<user>"); the approval when four eyes applied.
  requested_by      text        NOT NULL,
  requested_at      timestamptz NOT NULL,
  approval_id       text,
  -- NULL while it waits for its approval (or after a rejection: the approval says so).
  carried_out_at    timestamptz,
  FOREIGN KEY (payment_id, day) REFERENCES settlement.compensations (payment_id, day),
  CONSTRAINT compensation_retries_vpa CHECK ((payee_vpa_ct IS NULL) = (payee_vpa_masked IS NULL)),
  CONSTRAINT compensation_retries_other_vpa_approved CHECK (payee_vpa_ct IS NULL OR approval_id IS NOT NULL),
  CONSTRAINT compensation_retries_carried CHECK ((carried_out_at IS NULL) = (credit_ref IS NULL))
);
CREATE INDEX compensation_retries_by_compensation ON settlement.compensation_retries (payment_id, day, id);

-- The retry a compensation's current credit comes from (its payee, when another VPA was given).
ALTER TABLE settlement.compensations ADD COLUMN retry_id text REFERENCES settlement.compensation_retries (id);

-- Four eyes for a credit to another VPA: the approvals facility's kinds (migrations/0028).
ALTER TABLE identity.approval_requests DROP CONSTRAINT approval_requests_kind_check;
ALTER TABLE identity.approval_requests
  ADD CONSTRAINT approval_requests_kind_check CHECK (kind IN ('refund', 'mfa_reset', 'compensation_retry'));
