-- Operators (the people who run the platform), their sessions and second factors, and the
-- management fields API keys need (rotation, IP allowlist, who made them). PCI DSS 7 and 8.

CREATE TABLE identity.operators (
  id                   text        PRIMARY KEY,
  email                text        NOT NULL,
  name                 text        NOT NULL,
  -- null: platform staff; set: a merchant's own staff, who only ever see that merchant.
  merchant_id          text,
  roles                text[]      NOT NULL,
  status               text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'deleted')),
  disabled_reason      text,
  password_hash        text        NOT NULL,          -- argon2id, PHC string
  password_changed_at  timestamptz NOT NULL,
  -- A password someone else set (a new account, a reset) must be changed at first use (8.3.5).
  must_change_password boolean     NOT NULL DEFAULT true,
  -- TOTP secret, AES-256-GCM sealed (never stored readable); null until enrolled.
  totp_secret_sealed   bytea,
  totp_enrolled_at     timestamptz,
  -- The last TOTP time step accepted: a code at or before it is refused, so each code works once.
  totp_last_step       bigint      NOT NULL DEFAULT 0,
  failed_attempts      int         NOT NULL DEFAULT 0,
  locked_until         timestamptz,
  last_login_at        timestamptz,
  last_used_at         timestamptz,
  created_at           timestamptz NOT NULL,
  created_by           text
);
-- One account per person: emails are unique regardless of case (deleted accounts keep theirs).
CREATE UNIQUE INDEX operators_email ON identity.operators (lower(email));
CREATE INDEX operators_merchant ON identity.operators (merchant_id) WHERE merchant_id IS NOT NULL;

-- The previous passwords (argon2id), so a new one cannot repeat one of the last four (8.3.7).
CREATE TABLE identity.password_history (
  operator_id   text        NOT NULL REFERENCES identity.operators (id),
  password_hash text        NOT NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX password_history_operator ON identity.password_history (operator_id, created_at DESC);

-- One-time recovery codes: 80 random bits each, so a SHA-256 digest is enough to store.
CREATE TABLE identity.recovery_codes (
  operator_id text        NOT NULL REFERENCES identity.operators (id),
  code_hash   bytea       NOT NULL,
  used_at     timestamptz,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (operator_id, code_hash)
);

-- The step between a correct password and a session: it proves the password, and waits for
-- the second factor. Enrollment keeps the new TOTP secret here until a first code confirms it.
CREATE TABLE identity.mfa_challenges (
  id                 text        PRIMARY KEY,
  token_hash         bytea       NOT NULL UNIQUE,
  operator_id        text        NOT NULL REFERENCES identity.operators (id),
  kind               text        NOT NULL CHECK (kind IN ('totp', 'enroll')),
  pending_secret     bytea,                            -- sealed, enrollment only
  attempts           int         NOT NULL DEFAULT 0,
  expires_at         timestamptz NOT NULL,
  used_at            timestamptz,
  created_at         timestamptz NOT NULL
);
CREATE INDEX mfa_challenges_expires ON identity.mfa_challenges (expires_at);

-- Sessions: the token is 256 random bits, kept only as a SHA-256 digest. Idle and absolute
-- limits are enforced on every use (8.2.8).
CREATE TABLE identity.sessions (
  id             text        PRIMARY KEY,
  token_hash     bytea       NOT NULL UNIQUE,
  csrf_hash      bytea       NOT NULL,
  operator_id    text        NOT NULL REFERENCES identity.operators (id),
  created_at     timestamptz NOT NULL,
  last_seen_at   timestamptz NOT NULL,
  expires_at     timestamptz NOT NULL,                -- absolute end
  revoked_at     timestamptz,
  revoked_reason text,
  ip             text
);
CREATE INDEX sessions_operator ON identity.sessions (operator_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires ON identity.sessions (expires_at);

-- API keys: who made them, an optional IP allowlist, and the key a rotation replaced.
ALTER TABLE identity.api_keys
  ADD COLUMN ip_allowlist   cidr[] NOT NULL DEFAULT '{}',
  ADD COLUMN created_by     text,
  ADD COLUMN rotated_from   text REFERENCES identity.api_keys (id),
  ADD COLUMN revoked_by     text,
  ADD COLUMN revoked_reason text;
CREATE INDEX api_keys_merchant ON identity.api_keys (merchant_id, id);
