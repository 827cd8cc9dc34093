-- UPI payments (dynamic QR and collect), their refunds, and every state change they went through.
CREATE SCHEMA IF NOT EXISTS payments;

CREATE TABLE payments.payments (
  id                    text        PRIMARY KEY,
  txn_ref               text        NOT NULL UNIQUE CHECK (txn_ref ~ '^[A-Za-z0-9]{1,35}$'),  -- UPI "tr"
  merchant_id           text        NOT NULL,
  store_id              text        NOT NULL,
  terminal_id           text        NOT NULL,
  method                text        NOT NULL CHECK (method IN ('upi_qr', 'upi_collect')),
  amount                bigint      NOT NULL CHECK (amount > 0),
  currency              char(3)     NOT NULL CHECK (currency = 'INR'),
  status                text        NOT NULL CHECK (status IN ('created', 'pending', 'succeeded', 'failed', 'expired', 'partially_refunded', 'refunded')),
  payer_vpa             text,
  note                  text,
  upi_uri               text,
  bank_code             text        NOT NULL,
  bank_ref              text,
  response_code         text,
  expires_at            timestamptz NOT NULL,
  -- refund_reserved counts pending + succeeded refunds, so concurrent refunds can never
  -- together exceed the amount; refunded_amount counts succeeded ones only.
  refund_reserved       bigint      NOT NULL DEFAULT 0,
  refunded_amount       bigint      NOT NULL DEFAULT 0,
  status_checks         int         NOT NULL DEFAULT 0,
  next_check_at         timestamptz,
  needs_reconciliation  boolean     NOT NULL DEFAULT false,
  reconciliation_reason text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  completed_at          timestamptz,
  CHECK (refunded_amount >= 0 AND refunded_amount <= refund_reserved AND refund_reserved <= amount)
);
CREATE INDEX payments_by_merchant ON payments.payments (merchant_id, id DESC);
CREATE INDEX payments_by_terminal ON payments.payments (terminal_id, id DESC);
CREATE INDEX payments_due_check ON payments.payments (next_check_at) WHERE status = 'pending';
CREATE INDEX payments_due_expiry ON payments.payments (expires_at) WHERE status = 'pending';
CREATE INDEX payments_reconcile ON payments.payments (id) WHERE needs_reconciliation;

CREATE TABLE payments.refunds (
  id            text        PRIMARY KEY,
  payment_id    text        NOT NULL REFERENCES payments.payments (id),
  refund_ref    text        NOT NULL UNIQUE CHECK (refund_ref ~ '^[A-Za-z0-9]{1,35}$'),
  amount        bigint      NOT NULL CHECK (amount > 0),
  status        text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  reason        text,
  bank_ref      text,
  response_code text,
  status_checks int         NOT NULL DEFAULT 0,
  next_check_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz
);
CREATE INDEX refunds_by_payment ON payments.refunds (payment_id, id);
CREATE INDEX refunds_due_check ON payments.refunds (next_check_at) WHERE status = 'pending';

-- Append-only history of every state change and every bank answer that did not change state.
CREATE TABLE payments.payment_events (
  id            bigserial   PRIMARY KEY,
  payment_id    text        NOT NULL REFERENCES payments.payments (id),
  from_status   text,
  to_status     text        NOT NULL,
  source        text        NOT NULL,   -- api | callback | worker
  response_code text,
  detail        text,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_events_by_payment ON payments.payment_events (payment_id, id);
