-- Double-entry ledger. Invariants (see src/modules/ledger/README.md), checked by `tillpoint ledger verify`:
--   every entry's postings sum to zero; an entry's postings are all in the entry's book;
--   accounts.balance = normal-side sum of the account's postings; no account below its floor.
-- Only the ledger module writes these tables.
CREATE SCHEMA IF NOT EXISTS ledger;

CREATE TABLE ledger.accounts (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  book       text        NOT NULL,                 -- 'INR' (paise) or 'PTS' (points); books never mix
  code       text        NOT NULL,                 -- e.g. 'merchant_payable:mer_…'
  type       text        NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
  -- Lowest allowed balance, on the normal side. NULL = none. An account starts at 0, so a floor
  -- above 0 could never hold.
  floor      bigint               CHECK (floor IS NULL OR floor <= 0),
  -- Normal-side balance: sum(postings.amount) for asset/expense, -sum(postings.amount) otherwise.
  balance    bigint      NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (book, code),
  -- Backstop only: ledger.checked_balance() refuses a breach first, naming the account.
  CONSTRAINT accounts_balance_above_floor CHECK (floor IS NULL OR balance >= floor)
);

CREATE TABLE ledger.entries (
  id         text        PRIMARY KEY,              -- 'jrn_…'
  book       text        NOT NULL,
  kind       text        NOT NULL,                 -- e.g. 'payment.succeeded'
  reference  text        NOT NULL,                 -- e.g. the payment id
  memo       text,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- One business event is posted once: a second post of it writes nothing.
  UNIQUE (book, kind, reference)
);

CREATE TABLE ledger.postings (
  entry_id   text        NOT NULL REFERENCES ledger.entries (id),
  line       smallint    NOT NULL,                 -- position in the entry, from 0
  account_id bigint      NOT NULL REFERENCES ledger.accounts (id),
  amount     bigint      NOT NULL CHECK (amount <> 0),  -- debit > 0, credit < 0
  PRIMARY KEY (entry_id, line)
);
CREATE INDEX postings_account_id ON ledger.postings (account_id);

-- The new balance if it stays at or above the floor; otherwise an error that names the account.
-- Raising inside the UPDATE (rather than checking in the app afterwards) aborts the caller's
-- transaction, so a caller that catches the error cannot go on to commit half an entry.
CREATE FUNCTION ledger.checked_balance(p_book text, p_code text, p_balance bigint, p_floor bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF p_floor IS NOT NULL AND p_balance < p_floor THEN
    RAISE EXCEPTION 'ledger account %/% would fall below its floor', p_book, p_code
      USING ERRCODE = 'TPL01',
            DETAIL = json_build_object('book', p_book, 'code', p_code, 'balance', p_balance, 'floor', p_floor)::text;
  END IF;
  RETURN p_balance;
END
$$;
