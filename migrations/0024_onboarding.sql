-- Onboarding: bulk import of merchants, stores, terminals and reward opening balances from files
-- (src/modules/onboarding/README.md). What this migration is for:
--   * onboarding.imports: one row per import job (who ran it, the file's SHA-256, counts, the
--     checkpoint a resumed run starts from, the final report). Never holds a file's contents.
--   * onboarding.external_refs: the source system's reference of every imported row, unique per
--     merchant (merchants themselves: unique platform-wide), so re-running a file changes nothing.
--   * onboarding.rejects: rejected rows by line number with reasons (never the rejected values).
--   * onboarding.source_totals: what the source file said, per merchant, for the reconciliation.
-- It also lets the rewards tables say where imported points came from: a lot's source
-- 'import' and the statement line kind 'opening_balance' (the rewards module writes both).
CREATE SCHEMA IF NOT EXISTS onboarding;

CREATE TABLE onboarding.imports (
  id          text        PRIMARY KEY,                       -- 'imp_…'
  kind        text        NOT NULL CHECK (kind IN ('merchants', 'stores', 'terminals', 'reward-balances')),
  format      text        NOT NULL CHECK (format IN ('csv', 'jsonl')),
  mapping     text        NOT NULL,                          -- the mapping's name (file name or "inline")
  file_sha256 text        NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
  file_bytes  bigint      NOT NULL CHECK (file_bytes >= 0),
  dry_run     boolean     NOT NULL DEFAULT false,
  status      text        NOT NULL CHECK (status IN ('running', 'interrupted', 'completed', 'failed')),
  actor       text        NOT NULL,                          -- the API key, operator or OS user who ran it
  -- The checkpoint: every line up to here is applied (and its counts below are committed with it).
  lines_done  bigint      NOT NULL DEFAULT 0,
  rows_total  bigint      NOT NULL DEFAULT 0,
  created     bigint      NOT NULL DEFAULT 0,
  unchanged   bigint      NOT NULL DEFAULT 0,                -- already imported (same external reference)
  rejected    bigint      NOT NULL DEFAULT 0,
  error       text,                                          -- why a failed job stopped (a code and a message, no values)
  report      jsonb,
  started_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
-- A resumed run finds the unfinished job of the same file.
CREATE INDEX imports_by_file ON onboarding.imports (kind, file_sha256, status);

CREATE TABLE onboarding.external_refs (
  kind         text        NOT NULL CHECK (kind IN ('merchant', 'store', 'terminal', 'reward_balance')),
  -- '' for merchants (their reference is platform-wide); otherwise the merchant id.
  scope        text        NOT NULL,
  external_ref text        NOT NULL CHECK (char_length(external_ref) BETWEEN 1 AND 100),
  entity_id    text        NOT NULL,                         -- mer_/sto_/trm_/lot_ id it became
  import_id    text        NOT NULL REFERENCES onboarding.imports (id),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, scope, external_ref)
);
CREATE INDEX external_refs_by_import ON onboarding.external_refs (import_id);

CREATE TABLE onboarding.rejects (
  import_id text   NOT NULL REFERENCES onboarding.imports (id),
  line      bigint NOT NULL,
  field     text,
  reason    text   NOT NULL,
  PRIMARY KEY (import_id, line, reason)
);

-- Per merchant, what the accepted rows of the file carried (rows and, for balances, points and
-- their value in paise), added in the same transaction as each batch: the reconciliation
-- compares it with what Tillpoint holds.
CREATE TABLE onboarding.source_totals (
  import_id   text   NOT NULL REFERENCES onboarding.imports (id),
  merchant_id text   NOT NULL,
  rows        bigint NOT NULL DEFAULT 0,
  points      bigint NOT NULL DEFAULT 0,
  value_paise bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (import_id, merchant_id)
);

-- Imported points: where a lot came from, and the statement's first line.
ALTER TABLE rewards.lots DROP CONSTRAINT lots_source_check;
ALTER TABLE rewards.lots ADD CONSTRAINT lots_source_check CHECK (source IN ('earn', 'adjustment', 'import'));
ALTER TABLE rewards.movements DROP CONSTRAINT movements_kind_check;
ALTER TABLE rewards.movements ADD CONSTRAINT movements_kind_check
  CHECK (kind IN ('earn', 'mature', 'redeem', 'release', 'clawback', 'return', 'expire', 'adjustment', 'shortfall', 'opening_balance'));
