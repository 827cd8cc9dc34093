-- Terminals module: device identity (X.509 client certificates and development MQTT secrets),
-- the request ids terminals sent (so a redelivered request returns its original response), and
-- every refused connection, publish or subscription. Terminal ids refer to merchants.terminals;
-- like payments.payments, no foreign key crosses a module boundary.
CREATE SCHEMA IF NOT EXISTS terminals;

-- Client certificates issued by the terminal CA. A certificate is accepted at connect only if it
-- is recorded here, bound to the terminal named in it, unexpired and not revoked.
CREATE TABLE terminals.certificates (
  serial        text        PRIMARY KEY CHECK (serial ~ '^[0-9a-f]{2,64}$'),
  terminal_id   text        NOT NULL,
  fingerprint   text        NOT NULL UNIQUE CHECK (fingerprint ~ '^[0-9a-f]{64}$'),  -- SHA-256 of the DER
  not_before    timestamptz NOT NULL,
  not_after     timestamptz NOT NULL,
  revoked_at    timestamptz,
  revoke_reason text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificates_by_terminal ON terminals.certificates (terminal_id);
CREATE INDEX certificates_revoked ON terminals.certificates (revoked_at) WHERE revoked_at IS NOT NULL;

-- Per-terminal MQTT secrets for the plain development listener (never in production). Only a
-- SHA-256 digest is kept: secrets are 256 random bits, so there is no dictionary to attack.
-- Issuing a new secret revokes the previous one; at most one is live per terminal.
CREATE TABLE terminals.mqtt_secrets (
  id          bigserial   PRIMARY KEY,
  terminal_id text        NOT NULL,
  secret_hash bytea       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE UNIQUE INDEX mqtt_secrets_live ON terminals.mqtt_secrets (terminal_id) WHERE revoked_at IS NULL;
CREATE INDEX mqtt_secrets_revoked ON terminals.mqtt_secrets (revoked_at) WHERE revoked_at IS NOT NULL;

-- Request ids of state-changing requests. The first delivery claims the id; its response is
-- stored byte for byte, and a redelivery with the same id gets that response back.
CREATE TABLE terminals.requests (
  terminal_id  text        NOT NULL,
  request_id   text        NOT NULL,
  type         text        NOT NULL,
  request_hash text        NOT NULL,          -- type + body digest: same id, other request -> refused
  state        text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
  response     text,                          -- the exact JSON published on /res
  locked_until timestamptz NOT NULL,          -- an in-progress claim older than this may be taken over
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (terminal_id, request_id)
);
CREATE INDEX requests_created_at ON terminals.requests (created_at);

-- Refused connects, publishes and subscriptions, malformed and oversized messages: invalid
-- access attempts (PCI DSS 10.2.1.2), kept for review.
CREATE TABLE terminals.violations (
  id          bigserial   PRIMARY KEY,
  terminal_id text,                           -- null when the client never proved who it is
  client_id   text,                           -- as the client presented it, truncated
  kind        text        NOT NULL,
  detail      text,
  remote_addr text,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX violations_by_terminal ON terminals.violations (terminal_id, id);
CREATE INDEX violations_at ON terminals.violations (at);
