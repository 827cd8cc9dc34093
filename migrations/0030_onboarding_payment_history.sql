-- Onboarding: payment history brought in from a legacy system (`tillpoint import payments`,
-- src/modules/onboarding/README.md "Payment history"). What this migration is for:
--   * onboarding.payment_history / onboarding.refund_history: payments and refunds that happened
--     and were SETTLED BY THE LEGACY SYSTEM before the cut-over. They are kept apart from
--     payments.payments on purpose: settlement's cycles, payouts and reconciliation read
--     payments.payments, so history can never be expected in a bank file or paid out twice.
--     The payer's VPA is stored as the vault's ciphertext with its blind index (same purpose and
--     normalisation as payments.payments.payer_vpa_ct), never in clear.
--   * the import's own tables learn the new kind: imports.kind 'payments', external references
--     'payment' and 'refund' (unique per merchant, so re-running a file changes nothing).
--   * rewards learns where historic points came from: a lot's source 'history' (points the legacy
--     system awarded on a payment), written by the rewards module.
CREATE TABLE onboarding.payment_history (
  id             text        PRIMARY KEY,                      -- 'lpy_…' (UUIDv7 of the legacy creation time)
  merchant_id    text        NOT NULL,
  store_id       text        NOT NULL,
  terminal_id    text        NOT NULL,
  external_ref   text        NOT NULL,                         -- the legacy system's key, unique per merchant
  method         text        NOT NULL CHECK (method IN ('upi_qr', 'upi_collect')),
  amount         bigint      NOT NULL CHECK (amount > 0),      -- paise
  status         text        NOT NULL CHECK (status IN ('succeeded', 'failed', 'expired')),
  bank_code      text        NOT NULL,                         -- the acquirer it was taken through
  bank_ref       text,                                         -- the UPI RRN the bank gave
  payer_vpa_ct   text,
  payer_vpa_bidx text,
  refunded_amount bigint     NOT NULL DEFAULT 0,
  points_earned  bigint      NOT NULL DEFAULT 0 CHECK (points_earned >= 0),
  points_redeemed bigint     NOT NULL DEFAULT 0 CHECK (points_redeemed >= 0),
  created_at     timestamptz NOT NULL,
  completed_at   timestamptz,
  import_id      text        NOT NULL REFERENCES onboarding.imports (id),
  UNIQUE (merchant_id, external_ref),
  CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
  CHECK (status = 'succeeded' OR (refunded_amount = 0 AND points_earned = 0 AND points_redeemed = 0)),
  CHECK (completed_at IS NULL OR completed_at >= created_at)
);
CREATE INDEX payment_history_by_merchant ON onboarding.payment_history (merchant_id, created_at DESC);
CREATE INDEX payment_history_by_payer ON onboarding.payment_history (payer_vpa_bidx) WHERE payer_vpa_bidx IS NOT NULL;

CREATE TABLE onboarding.refund_history (
  id           text        PRIMARY KEY,                        -- 'lrf_…'
  payment_id   text        NOT NULL REFERENCES onboarding.payment_history (id),
  merchant_id  text        NOT NULL,
  external_ref text        NOT NULL,
  amount       bigint      NOT NULL CHECK (amount > 0),
  status       text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
  bank_ref     text,
  created_at   timestamptz NOT NULL,
  completed_at timestamptz,
  import_id    text        NOT NULL REFERENCES onboarding.imports (id),
  UNIQUE (merchant_id, external_ref)
);
CREATE INDEX refund_history_by_payment ON onboarding.refund_history (payment_id);

ALTER TABLE onboarding.imports DROP CONSTRAINT imports_kind_check;
ALTER TABLE onboarding.imports ADD CONSTRAINT imports_kind_check
  CHECK (kind IN ('merchants', 'stores', 'terminals', 'reward-balances', 'payments'));
ALTER TABLE onboarding.external_refs DROP CONSTRAINT external_refs_kind_check;
ALTER TABLE onboarding.external_refs ADD CONSTRAINT external_refs_kind_check
  CHECK (kind IN ('merchant', 'store', 'terminal', 'reward_balance', 'payment', 'refund'));

ALTER TABLE rewards.lots DROP CONSTRAINT lots_source_check;
ALTER TABLE rewards.lots ADD CONSTRAINT lots_source_check CHECK (source IN ('earn', 'adjustment', 'import', 'history'));
