-- Four eyes: requests that a second, different operator must approve before they take effect
-- (src/modules/identity/approvals.*). Two kinds use it today: a refund above
-- REFUND_APPROVAL_THRESHOLD_PAISE asked for by an operator, and an operator's MFA reset over the
-- API. A request moves money or changes an account only when it is approved; the approval and
-- the effect commit in one transaction (the status check below is the claim), so it acts once.

CREATE TABLE identity.approval_requests (
  id            text        PRIMARY KEY,                      -- apr_…, time-ordered (cursor pagination)
  kind          text        NOT NULL CHECK (kind IN ('refund', 'mfa_reset')),
  -- What the request acts on: a payment for a refund, an operator for an MFA reset.
  subject_type  text        NOT NULL,
  subject_id    text        NOT NULL,
  -- The merchant whose data it is (null: platform-wide): decided only by those who may see it.
  merchant_id   text,
  -- What was asked: for a refund {amount, reason}. Never secrets or personal data.
  payload       jsonb       NOT NULL,
  requested_by  text        NOT NULL REFERENCES identity.operators (id),
  requested_at  timestamptz NOT NULL,
  status        text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'failed')),
  decided_by    text        REFERENCES identity.operators (id),
  decided_at    timestamptz,
  -- A rejection's reason (required), or why an approval could not be carried out (failed).
  reason        text,
  -- What the approval did: {refund_id} for a refund; the error code for a failed one.
  outcome       jsonb,
  expires_at    timestamptz NOT NULL,
  -- The rule itself, in the schema: whoever asked never decides.
  CONSTRAINT approval_four_eyes CHECK (decided_by IS NULL OR decided_by <> requested_by),
  CONSTRAINT approval_decided CHECK ((status = 'pending') = (decided_at IS NULL))
);

-- The pending queue, newest first, and the expiry sweep.
CREATE INDEX approval_requests_pending ON identity.approval_requests (id DESC) WHERE status = 'pending';
CREATE INDEX approval_requests_expiry ON identity.approval_requests (expires_at) WHERE status = 'pending';
-- A payment's requests, for its detail page.
CREATE INDEX approval_requests_subject ON identity.approval_requests (subject_type, subject_id, id DESC);
-- One pending MFA reset per operator: a second request would only duplicate the first.
CREATE UNIQUE INDEX approval_requests_one_mfa_reset ON identity.approval_requests (subject_id)
  WHERE kind = 'mfa_reset' AND status = 'pending';
