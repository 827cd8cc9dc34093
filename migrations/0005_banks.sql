-- Banks module: whether each acquiring bank is taking traffic. Kept in the database, not in
-- memory, so that marking a bank down on one replica reroutes payments on all of them.
-- A bank with no row is up.
CREATE SCHEMA IF NOT EXISTS banks;

CREATE TABLE banks.bank_status (
  code        text        PRIMARY KEY,          -- BankConfig.code, e.g. "SIMBANK"
  status      text        NOT NULL CHECK (status IN ('up', 'down')),
  reason      text,                             -- why it was marked down (operator note, health check)
  changed_at  timestamptz NOT NULL DEFAULT now()
);
