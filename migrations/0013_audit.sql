-- The audit trail (PCI DSS 10). Records are written in the transaction of the change they
-- describe; the worker later gives each a place in an RFC 6962 Merkle tree and signs tree
-- heads. Nothing here is ever updated or deleted, except by the retention job after a record
-- was exported to write-once storage (see src/modules/audit/README.md).
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE audit.events (
  id            text        PRIMARY KEY,
  -- Insert order; may have gaps (rolled-back transactions), so it is not the tree position.
  seq           bigserial   NOT NULL UNIQUE,
  -- The writing transaction: the sealer only takes records whose transaction has ended.
  xid           xid8        NOT NULL DEFAULT pg_current_xact_id(),
  -- The record itself, canonical JSON: the exact bytes the tree hashes. The columns below are
  -- copies for queries; `audit verify` checks they agree with the record.
  record        text        NOT NULL,
  -- HMAC-SHA-256 of the record under a key kept outside the database.
  mac           bytea       NOT NULL,
  occurred_at   timestamptz NOT NULL,
  action        text        NOT NULL,
  outcome       text        NOT NULL CHECK (outcome IN ('success', 'failure')),
  actor_id      text,
  merchant_id   text,
  resource_id   text
);
CREATE INDEX events_xid ON audit.events (xid);
CREATE INDEX events_occurred ON audit.events (occurred_at, id);
CREATE INDEX events_actor ON audit.events (actor_id, occurred_at) WHERE actor_id IS NOT NULL;
CREATE INDEX events_resource ON audit.events (resource_id, occurred_at) WHERE resource_id IS NOT NULL;
CREATE INDEX events_action ON audit.events (action, occurred_at);

-- Tree positions: leaf i is SHA-256(0x00 || record of event_id).
CREATE TABLE audit.leaves (
  leaf_index bigint      PRIMARY KEY CHECK (leaf_index >= 0),
  event_id   text        NOT NULL UNIQUE,
  leaf_hash  bytea       NOT NULL,
  sealed_at  timestamptz NOT NULL
);

-- Roots of the perfect subtrees (level >= 1), stored once when completed: proofs read
-- O(log n) of these instead of rehashing the whole tree.
CREATE TABLE audit.nodes (
  level smallint NOT NULL CHECK (level >= 1),
  idx   bigint   NOT NULL,
  hash  bytea    NOT NULL,
  PRIMARY KEY (level, idx)
);

-- Signed tree heads. The signature covers the canonical JSON of
-- {"log","root_hash","timestamp","tree_size","v"} (see heads.ts).
CREATE TABLE audit.tree_heads (
  tree_size  bigint      PRIMARY KEY,
  root_hash  bytea       NOT NULL,
  signed_at  timestamptz NOT NULL,
  key_id     text        NOT NULL,
  signature  bytea       NOT NULL
);

-- Bookkeeping of the sealer and the exporter (one row). Not trusted by `audit verify`.
CREATE TABLE audit.state (
  id             int         PRIMARY KEY CHECK (id = 1),
  tree_size      bigint      NOT NULL,
  -- Transactions older than this had all ended when the sealer last looked.
  sealed_xmin    xid8        NOT NULL,
  exported_size  bigint      NOT NULL,
  -- Leaves below this have had their records removed from the database after export.
  pruned_size    bigint      NOT NULL
);
INSERT INTO audit.state (id, tree_size, sealed_xmin, exported_size, pruned_size) VALUES (1, 0, '0', 0, 0);

-- Sealed segments written to write-once storage.
CREATE TABLE audit.exports (
  segment_start bigint      NOT NULL,
  segment_end   bigint      NOT NULL,
  target        text        NOT NULL,
  location      text        NOT NULL,
  sha256        text        NOT NULL,
  exported_at   timestamptz NOT NULL,
  PRIMARY KEY (segment_start, target)
);

-- Append-only, enforced by the database too. This is a guard against mistakes and casual
-- tampering; a superuser can drop it, which is why the tree, the MACs and the signed heads
-- (checked by `tillpoint audit verify`) are what really detect a change.
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The retention job removes exported records older than the online period, and says so.
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'events' AND current_setting('tillpoint.audit_prune', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'the audit trail is append-only: % on audit.% refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER leaves_append_only BEFORE UPDATE OR DELETE ON audit.leaves FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER nodes_append_only BEFORE UPDATE OR DELETE ON audit.nodes FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER heads_append_only BEFORE UPDATE OR DELETE ON audit.tree_heads FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER leaves_no_truncate BEFORE TRUNCATE ON audit.leaves FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER heads_no_truncate BEFORE TRUNCATE ON audit.tree_heads FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
