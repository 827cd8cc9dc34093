-- Reconciliation with the banks' settlement files (src/modules/settlement/recon/README.md).
--
-- A bank sends one file per NPCI settlement cycle. Each file is ingested once (by SHA-256, and
-- once per bank and cycle), all of its lines or none of them; every line then ends with exactly
-- one outcome (matched, or an exception of a named kind), and every one of our payments and
-- refunds is matched at most once (the primary key of recon_item_outcomes). Exceptions are the
-- queue operators work; forced matches and write-offs need a second operator (four eyes).
-- The `settlement` schema is shared with the settlement cycles, payouts and reversals (0023).
CREATE SCHEMA IF NOT EXISTS settlement;

CREATE TABLE settlement.recon_files (
  id             text        PRIMARY KEY,
  bank_code      text        NOT NULL CHECK (bank_code ~ '^[A-Z0-9_]{2,20}$'),
  -- The NPCI cycle the file settles: IST date and cycle number, e.g. 2026-12-03-C1.
  cycle_key      text        NOT NULL CHECK (cycle_key ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}-C[1-9][0-9]?$'),
  sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  file_name      text        CHECK (file_name IS NULL OR length(file_name) BETWEEN 1 AND 255),
  mapping_id     text        NOT NULL,
  status         text        NOT NULL CHECK (status IN ('ingested', 'matched')),
  lines          int         NOT NULL DEFAULT 0 CHECK (lines >= 0),
  skipped_lines  int         NOT NULL DEFAULT 0 CHECK (skipped_lines >= 0),
  credit_paise   bigint      NOT NULL DEFAULT 0 CHECK (credit_paise >= 0),
  debit_paise    bigint      NOT NULL DEFAULT 0 CHECK (debit_paise >= 0),
  first_txn_at   timestamptz,
  last_txn_at    timestamptz,
  matched_paise  bigint      NOT NULL DEFAULT 0,
  -- Lines per outcome after matching, e.g. {"matched": 998, "duplicate": 1, "unknown": 1}.
  outcomes       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  ingested_by    text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  matched_at     timestamptz,
  UNIQUE (bank_code, sha256),
  UNIQUE (bank_code, cycle_key)
);
CREATE INDEX recon_files_list ON settlement.recon_files (id DESC);

-- One row per data line of a file. Amounts are positive paise; direction says which way.
CREATE TABLE settlement.recon_lines (
  file_id       text        NOT NULL REFERENCES settlement.recon_files (id),
  line_no       int         NOT NULL CHECK (line_no > 0),
  direction     text        NOT NULL CHECK (direction IN ('credit', 'debit')),
  txn_ref       text,
  bank_ref      text,
  reference     text,
  amount_paise  bigint      NOT NULL CHECK (amount_paise > 0),
  txn_at        timestamptz,
  outcome       text        CHECK (outcome IN ('matched', 'amount_mismatch', 'duplicate', 'unknown', 'late_success', 'not_final')),
  match_rule    text,
  match_mode    text        CHECK (match_mode IN ('auto', 'manual', 'forced')),
  -- Lines matched together (many-to-one) share a group: the lowest line number among them.
  match_group   int,
  our_kind      text        CHECK (our_kind IN ('payment', 'refund')),
  our_id        text,
  exception_id  text,
  PRIMARY KEY (file_id, line_no)
) WITH (fillfactor = 60);
-- Only the primary key: matching writes an outcome to every line of a file, and with room left
-- in each page (fillfactor) and no index on the columns it writes, those are HOT updates that
-- touch no index. Every query on lines is scoped to one file (the key's prefix).

-- Each of our payments and refunds ends here at most once: a second line for it is a duplicate.
CREATE TABLE settlement.recon_item_outcomes (
  our_kind      text        NOT NULL CHECK (our_kind IN ('payment', 'refund')),
  our_id        text        NOT NULL,
  outcome       text        NOT NULL CHECK (outcome IN ('matched', 'amount_mismatch', 'late_success', 'not_final')),
  mode          text        NOT NULL CHECK (mode IN ('auto', 'manual', 'forced')),
  rule          text        NOT NULL,
  file_id       text        NOT NULL REFERENCES settlement.recon_files (id),
  match_group   int         NOT NULL,
  amount_paise  bigint      NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (our_kind, our_id)
);
CREATE INDEX recon_item_outcomes_by_file ON settlement.recon_item_outcomes (file_id, match_group);

CREATE TABLE settlement.recon_exceptions (
  id              text        PRIMARY KEY,
  kind            text        NOT NULL CHECK (kind IN ('missing', 'amount_over', 'amount_under', 'duplicate', 'unknown', 'late_success', 'not_final', 'flagged')),
  bank_code       text        NOT NULL,
  cycle_key       text,
  file_id         text        REFERENCES settlement.recon_files (id),
  line_no         int,
  payment_id      text,
  refund_id       text,
  amount_paise    bigint      NOT NULL CHECK (amount_paise >= 0),
  expected_paise  bigint,
  detail          text        NOT NULL,
  status          text        NOT NULL CHECK (status IN ('open', 'pending_approval', 'resolved')),
  resolution      text        CHECK (resolution IN ('accept', 'refund_customer', 'reverse', 'write_off', 'match', 'matched_by_file')),
  reason          text        CHECK (reason IS NULL OR length(reason) <= 500),
  -- Four eyes: what the first operator asked for, waiting for a second one.
  requested_resolution text   CHECK (requested_resolution IN ('match', 'write_off')),
  requested_by    text,
  requested_at    timestamptz,
  resolved_by     text,
  approved_by     text,
  reversal_id     text,
  -- A forced match: the item the operator named (its kind and id).
  match_kind      text        CHECK (match_kind IN ('payment', 'refund')),
  match_id        text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  resolved_at     timestamptz,
  -- Four eyes: whoever approves is not whoever asked.
  CHECK (approved_by IS NULL OR approved_by <> requested_by),
  CHECK ((status = 'resolved') = (resolution IS NOT NULL AND resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX recon_exceptions_one_per_line ON settlement.recon_exceptions (file_id, line_no) WHERE file_id IS NOT NULL AND line_no IS NOT NULL;
-- One open "missing" and one open "flagged" exception per payment (or refund) at a time.
CREATE UNIQUE INDEX recon_exceptions_open_item ON settlement.recon_exceptions (kind, coalesce(refund_id, payment_id))
  WHERE line_no IS NULL AND status <> 'resolved';
CREATE INDEX recon_exceptions_list ON settlement.recon_exceptions (id DESC);
CREATE INDEX recon_exceptions_open ON settlement.recon_exceptions (kind, created_at) WHERE status <> 'resolved';

-- Each ingestion and matching run (dry runs are not stored; they roll back).
CREATE TABLE settlement.recon_runs (
  id           text        PRIMARY KEY,
  file_id      text        NOT NULL REFERENCES settlement.recon_files (id),
  rules_id     text        NOT NULL,
  counts       jsonb       NOT NULL,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  run_by       text
);
CREATE INDEX recon_runs_list ON settlement.recon_runs (id DESC);
