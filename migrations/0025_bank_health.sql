-- Banks module (issue 14): what each process's circuit breakers and health windows say about
-- each bank, for `tillpoint banks status` and the console. The breaker itself is in memory, per
-- process (route() runs on every payment and must not read the database for it); every process
-- writes its view here a few times a minute and on every breaker transition, off the payment's
-- path. One row per bank and process; rows not refreshed for a while are shown as stale.
CREATE TABLE banks.bank_health (
  code          text        NOT NULL,             -- BankConfig.code
  instance      text        NOT NULL,             -- host:pid of the process that measured it
  breaker       text        NOT NULL CHECK (breaker IN ('closed', 'open', 'half_open')),
  calls         integer     NOT NULL,             -- in the sliding window, all classes
  ok            integer     NOT NULL,
  declined      integer     NOT NULL,             -- customer declines: not held against the bank
  technical     integer     NOT NULL,             -- timeouts, 5xx, resets, unreadable and deemed answers
  success_rate  numeric(5,4),                     -- ok / (ok + technical); null without calls
  p95_ms        integer,
  rule          text        NOT NULL,             -- routing rule in force in that process
  weight        numeric(5,4),                     -- share of new payments this bank would get there
  updated_at    timestamptz NOT NULL,
  PRIMARY KEY (code, instance)
);
