-- API keys for partner and merchant systems. Only a SHA-256 digest of the key is stored:
-- keys are 256 random bits, so a fast hash is enough (no dictionary to attack), and lookups
-- stay one indexed read.
CREATE SCHEMA IF NOT EXISTS identity;

CREATE TABLE identity.api_keys (
  id           text        PRIMARY KEY,
  name         text        NOT NULL,
  key_hash     bytea       NOT NULL UNIQUE,
  key_prefix   text        NOT NULL,             -- first characters, for people to recognise a key
  merchant_id  text,                             -- null: platform/partner key for every merchant
  permissions  text[]      NOT NULL,
  expires_at   timestamptz,
  revoked_at   timestamptz,
  last_used_at timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
