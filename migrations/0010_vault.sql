-- The vault: data-encryption keys (stored only wrapped by a key-encrypting key), the progress of
-- background re-encryption after a rotation, tokens, and the log of every detokenization.
-- src/modules/vault/README.md has the rules these tables encode.
CREATE SCHEMA IF NOT EXISTS vault;

-- One row per version of a data key. kind 'aead' keys encrypt fields (AES-256-GCM); kind 'hmac'
-- keys compute blind indexes (HMAC-SHA-256). Exactly one version per (purpose, kind) is active:
-- it encrypts; older versions only decrypt until every row has moved off them, then they are
-- retired and their wrapped key is erased, so nothing can decrypt with them again.
CREATE TABLE vault.data_keys (
  purpose     text        NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]{0,39}$'),
  kind        text        NOT NULL CHECK (kind IN ('aead', 'hmac')),
  version     int         NOT NULL CHECK (version > 0),
  state       text        NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
  wrapped_key text,                               -- the DEK wrapped by the KEK; NULL once retired
  kek_ref     text        NOT NULL,               -- which KEK (provider, key, version) wrapped it
  created_at  timestamptz NOT NULL DEFAULT now(),
  rotated_at  timestamptz,                        -- when it stopped being the active version
  retired_at  timestamptz,
  PRIMARY KEY (purpose, kind, version),
  CHECK ((state = 'retired') = (wrapped_key IS NULL)),
  CHECK (state = 'active' OR rotated_at IS NOT NULL)
);
CREATE UNIQUE INDEX data_keys_one_active ON vault.data_keys (purpose, kind) WHERE state = 'active';

-- Re-encryption progress per encrypted column, so the worker resumes where it stopped.
CREATE TABLE vault.rewrap_jobs (
  field           text        PRIMARY KEY,        -- "<table>.<column>", e.g. payments.payments.payer_vpa_ct
  cursor          text,                           -- last row id handled in the pass under way; NULL: no pass
  pass_started_at timestamptz,
  pass_rewritten  bigint      NOT NULL DEFAULT 0,
  pass_failures   bigint      NOT NULL DEFAULT 0, -- rows that did not decrypt: the old key is kept until fixed
  verified_at     timestamptz,                    -- start of the last complete pass: every row was current then
  rows_rewritten  bigint      NOT NULL DEFAULT 0, -- all time
  lease_until     timestamptz,                    -- a worker is on it until then (replicas take turns)
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Tokens stand in for sensitive values in business tables. The value is encrypted (AAD bound to
-- the token) and blind-indexed, so the same value from the same owner gets the same token.
CREATE TABLE vault.tokens (
  token       text        PRIMARY KEY CHECK (token ~ '^tok_[A-Za-z0-9_-]{24}$'),
  owner       text        NOT NULL,               -- merchant id, or 'platform'
  purpose     text        NOT NULL CHECK (purpose IN ('vpa', 'phone', 'pan', 'bank_account', 'name', 'email')),
  value_ct    text        NOT NULL,
  value_bidx  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tokens_by_value ON vault.tokens (owner, purpose, value_bidx);

-- Every detokenization, allowed or refused. Written in the same transaction that reads the
-- value, so a value is never returned without its record.
CREATE TABLE vault.access_log (
  id          bigserial   PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  actor       text        NOT NULL,               -- API key id or operator id
  action      text        NOT NULL,               -- detokenize
  token       text        NOT NULL,
  purpose     text,
  reason      text        NOT NULL,
  outcome     text        NOT NULL CHECK (outcome IN ('allowed', 'denied', 'not_found')),
  request_id  text,
  remote_addr text
);
CREATE INDEX access_log_by_token ON vault.access_log (token, id);
