-- Terminals module (issue 16, presence): whether each terminal is connected now, since when, and
-- when the platform last heard from it, for the console's Terminals page and the Overview's
-- "terminals online". The gateway writes it in batches (src/modules/terminals/presence.ts): status
-- changes from the broker (a terminal's retained "online", its MQTT will "offline", or the
-- embedded broker's own connect and disconnect) and a last_seen refreshed by requests at most once
-- a minute per terminal. A table of its own, not columns of merchants.terminals: these rows are
-- rewritten all day, the terminal record is read by every payment and should not churn.
CREATE TABLE terminals.presence (
  terminal_id   text        PRIMARY KEY REFERENCES merchants.terminals (id) ON DELETE CASCADE,
  online        boolean     NOT NULL,
  -- The connection this state belongs to: its start in ms since the epoch (the terminal's clock on
  -- an external broker, clamped to the gateway's; the gateway's on the embedded broker). A status
  -- is applied only when (since, offline after online) is later than the stored one, so an old
  -- connection's will delivered late, to another gateway replica, cannot undo a newer "online".
  since_ms      bigint      NOT NULL,
  changed_at    timestamptz NOT NULL,             -- when `online` last changed (gateway's clock)
  last_seen_at  timestamptz NOT NULL,             -- the latest status message, connect, disconnect or request
  source        text        NOT NULL              -- 'embedded' or 'external': which broker reported it
) WITH (fillfactor = 80);                         -- room for HOT updates: the rows are rewritten often

-- "terminals online" and the online filter read only the online rows.
CREATE INDEX presence_online_idx ON terminals.presence (terminal_id) WHERE online;
