-- Leases: work that exactly one process of a role may do at a time (the audit trail's signer),
-- with a holder and an expiry. The holder renews it on every worker tick; a holder that dies stops
-- renewing, and the next worker to look after expires_at takes it over. Times are the database's
-- own clock, so the replicas' clocks need not agree. See src/platform/leases.ts.
CREATE TABLE platform.leases (
  name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
  holder text NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
  acquired_at timestamptz NOT NULL,
  renewed_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
