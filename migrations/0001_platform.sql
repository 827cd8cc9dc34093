-- Platform tables shared by every module: idempotency records, the transactional outbox,
-- and the nonces of signed inbound calls (replay protection).
CREATE SCHEMA IF NOT EXISTS platform;

CREATE TABLE platform.idempotency_keys (
  scope          text        NOT NULL,          -- who sent it: the API key id (keys are per caller)
  key            text        NOT NULL,
  request_hash   text        NOT NULL,          -- method + path + body digest: same key, other body -> 409
  state          text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
  response_status int,
  response_body  text,
  locked_until   timestamptz NOT NULL,          -- an in-progress record older than this may be taken over
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON platform.idempotency_keys (created_at);

-- Events written in the same transaction as the change they describe; a relay publishes
-- them after commit, so no event is lost and none is sent for a rolled-back change.
CREATE TABLE platform.outbox (
  id           bigserial   PRIMARY KEY,
  topic        text        NOT NULL,            -- e.g. "payment.updated"
  key          text        NOT NULL,            -- routing key, e.g. the terminal id
  payload      jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_unpublished ON platform.outbox (id) WHERE published_at IS NULL;

CREATE TABLE platform.used_nonces (
  scope     text        NOT NULL,               -- e.g. "bank:SIMBANK"
  nonce     text        NOT NULL,
  seen_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, nonce)
);
CREATE INDEX used_nonces_seen_at ON platform.used_nonces (seen_at);

-- Inbound signed calls that were refused (bad signature, stale, replayed), kept for review.
CREATE TABLE platform.rejected_calls (
  id          bigserial   PRIMARY KEY,
  scope       text        NOT NULL,
  reason      text        NOT NULL,
  remote_addr text,
  received_at timestamptz NOT NULL DEFAULT now()
);
