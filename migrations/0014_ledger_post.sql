-- One ledger entry in one round trip. ledger.post_entry() does what the ledger service used to
-- do in two statements (and a third for a duplicate): create the accounts that do not exist yet,
-- refuse an account used with another type or floor, write the entry once per
-- (book, kind, reference), lock the changed accounts in code order, move their balances (each
-- checked against its floor) and write the postings. Every payment's success posts one entry
-- while holding the bank's clearing account, so each round trip saved here is time that lock is
-- not held (bench/PROFILE.md).
--
-- The caller (src/modules/ledger/ledger.service.ts) has already validated and normalised the entry:
--   p_accounts  [{ code, type, floor, floor_given, shards }], one per distinct account
--   p_lines     [{ line, code, amount }], amount signed (debit > 0, credit < 0), summing to 0
-- Errors carry a JSON DETAIL and a SQLSTATE the service turns into an AppError:
--   TPL01 floor breach (from ledger.checked_balance), TPL02 type conflict, TPL03 floor conflict,
--   TPL04 the same (book, kind, reference) already posted with other lines.
-- Raising aborts the caller's transaction, so nothing of a refused entry can be committed.
-- Under READ COMMITTED each statement below sees what committed before it started, so an account
-- or entry another transaction created a moment ago is found by the next statement.

-- Hot accounts. Every successful payment at a bank debits that bank's clearing account; kept in
-- one row, its row lock made all of a bank's payment completions wait for each other, one commit
-- (and WAL flush) at a time (bench/PROFILE.md). An account with shards > 1 keeps its balance
-- spread over that many rows of ledger.balance_shards instead: each database session adds to its
-- own row (pg_backend_pid() % shards), so concurrent entries do not queue for one lock.
--   an account's balance = accounts.balance + sum(balance_shards.balance of the account)
-- (for shards = 1 there are no shard rows, and accounts.balance is the balance, as before).
-- A floor needs one row to check against, so a sharded account has none. `tillpoint ledger
-- verify` checks the sum against the postings like any other balance. The number of shards only
-- says where new changes go, so it can grow at any time without moving a balance.
ALTER TABLE ledger.accounts ADD COLUMN shards smallint NOT NULL DEFAULT 1 CHECK (shards BETWEEN 1 AND 256);
ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_sharded_without_floor CHECK (shards = 1 OR floor IS NULL);

CREATE TABLE ledger.balance_shards (
  account_id bigint NOT NULL REFERENCES ledger.accounts (id),
  shard      smallint NOT NULL,
  balance    bigint   NOT NULL,
  PRIMARY KEY (account_id, shard)
);

CREATE FUNCTION ledger.post_entry(p_id text, p_book text, p_kind text, p_reference text, p_memo text,
                                  p_accounts jsonb, p_lines jsonb)
RETURNS TABLE (journal_id text, duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_bad record;
  v_id text;
  v_want int;
  v_done int;
  v_bad_any boolean;
  v_grow boolean;
  v_hot boolean;
BEGIN
  -- Every lookup of an account below is by (book, code) or id, one row of the entry at a time
  -- (LATERAL ... LIMIT 1, ANY(ARRAY(...))): the planner guesses 100 rows for jsonb_to_recordset()
  -- and, with a cached plan, would otherwise scan the whole accounts table on every entry
  -- (measured: 46,000 sequential scans of ~1,000 accounts in one benchmark run).
  -- 1. New accounts, inserted in code order so two entries creating the same ones cannot deadlock.
  INSERT INTO ledger.accounts (book, code, type, floor, shards)
  SELECT p_book, a.code, a.type, a.floor, a.shards
  FROM jsonb_to_recordset(p_accounts) AS a(code text, type text, floor bigint, shards smallint)
  LEFT JOIN LATERAL (SELECT x.id FROM ledger.accounts x WHERE x.book = p_book AND x.code = a.code LIMIT 1) e ON true
  WHERE e.id IS NULL
  ORDER BY a.code COLLATE "C"
  ON CONFLICT (book, code) DO NOTHING;
  -- 2. One look at the entry's accounts: is any used with another type (or another floor where
  -- one was named), asked to be spread over more rows than it is (a release that made it hot),
  -- or hot at all? The statements that handle each case run only when it arises.
  SELECT coalesce(bool_or(x.type <> a.type OR (a.floor_given AND x.floor IS DISTINCT FROM a.floor)), false),
         coalesce(bool_or(x.shards < a.shards AND x.floor IS NULL), false),
         coalesce(bool_or(x.shards > 1 OR (a.shards > 1 AND x.floor IS NULL)), false)
  INTO v_bad_any, v_grow, v_hot
  FROM jsonb_to_recordset(p_accounts) AS a(code text, type text, floor bigint, floor_given boolean, shards smallint)
  CROSS JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = a.code LIMIT 1) x;
  IF v_bad_any THEN
    SELECT a.code, x.type AS have_type, a.type AS want_type, x.floor AS have_floor, a.floor AS want_floor,
           x.type <> a.type AS type_differs
    INTO v_bad
    FROM jsonb_to_recordset(p_accounts) AS a(code text, type text, floor bigint, floor_given boolean)
    CROSS JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = a.code LIMIT 1) x
    WHERE x.type <> a.type OR (a.floor_given AND x.floor IS DISTINCT FROM a.floor)
    ORDER BY a.code COLLATE "C"
    LIMIT 1;
    IF v_bad.type_differs THEN
      RAISE EXCEPTION 'ledger account %/% is a % account, not %', p_book, v_bad.code, v_bad.have_type, v_bad.want_type
        USING ERRCODE = 'TPL02',
              DETAIL = json_build_object('book', p_book, 'code', v_bad.code, 'have', v_bad.have_type, 'want', v_bad.want_type)::text;
    END IF;
    RAISE EXCEPTION 'ledger account %/% has floor %, not %', p_book, v_bad.code, v_bad.have_floor, v_bad.want_floor
      USING ERRCODE = 'TPL03',
            DETAIL = json_build_object('book', p_book, 'code', v_bad.code, 'have', v_bad.have_floor, 'want', v_bad.want_floor)::text;
  END IF;
  IF v_grow THEN
    UPDATE ledger.accounts x SET shards = a.shards
    FROM jsonb_to_recordset(p_accounts) AS a(code text, shards smallint)
    WHERE x.book = p_book AND x.code = a.code AND x.shards < a.shards AND x.floor IS NULL;
  END IF;

  -- 3. The entry, once per business event.
  INSERT INTO ledger.entries (id, book, kind, reference, memo)
  VALUES (p_id, p_book, p_kind, p_reference, p_memo)
  ON CONFLICT (book, kind, reference) DO NOTHING
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    -- Posted before: a duplicate only if it is the same event with the same lines.
    SELECT e.id INTO v_id FROM ledger.entries e WHERE e.book = p_book AND e.kind = p_kind AND e.reference = p_reference;
    IF (SELECT array_agg(a.code || ' ' || p.amount ORDER BY (a.code || ' ' || p.amount) COLLATE "C")
        FROM ledger.postings p JOIN ledger.accounts a ON a.id = p.account_id WHERE p.entry_id = v_id)
       IS DISTINCT FROM
       (SELECT array_agg(l.code || ' ' || l.amount ORDER BY (l.code || ' ' || l.amount) COLLATE "C")
        FROM jsonb_to_recordset(p_lines) AS l(code text, amount bigint)) THEN
      RAISE EXCEPTION 'ledger entry % % was already posted with different lines', p_kind, p_reference
        USING ERRCODE = 'TPL04', DETAIL = json_build_object('book', p_book, 'journal_id', v_id)::text;
    END IF;
    RETURN QUERY SELECT v_id, true;
    RETURN;
  END IF;

  -- 4. Balances. An account kept in one row: locked in code order (FOR NO KEY UPDATE, the mode
  -- UPDATE takes, which does not block other entries' posting inserts through the foreign key),
  -- then moved; a balance below its floor raises TPL01. A hot account (shards > 1, never with a
  -- floor): the change is added to one of its shard rows, the one of this database session, so
  -- concurrent entries on other sessions never wait for each other; locked after the plain rows,
  -- in code order, so two entries cannot deadlock.
  WITH d AS (
    SELECT x.id, x.code, x.shards, (sum(l.amount) * CASE WHEN x.type IN ('asset', 'expense') THEN 1 ELSE -1 END)::bigint AS delta
    FROM jsonb_to_recordset(p_lines) AS l(code text, amount bigint)
    CROSS JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = l.code LIMIT 1) x
    GROUP BY x.id, x.code, x.type, x.shards
  ),
  locked AS MATERIALIZED (
    SELECT a.id FROM ledger.accounts a
    WHERE a.id = ANY (ARRAY(SELECT id FROM d WHERE delta <> 0 AND shards = 1))
    ORDER BY a.code COLLATE "C"
    FOR NO KEY UPDATE OF a
  ),
  moved AS (
    UPDATE ledger.accounts a
    SET balance = ledger.checked_balance(a.book, a.code, a.balance + d.delta, a.floor)
    FROM d
    WHERE a.id = d.id AND a.id = ANY (ARRAY(SELECT id FROM locked))
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM d WHERE delta <> 0 AND shards = 1), (SELECT count(*) FROM moved) INTO v_want, v_done;
  IF v_done <> v_want THEN
    RAISE EXCEPTION 'ledger entry % % moved % of % balances', p_kind, p_reference, v_done, v_want USING ERRCODE = 'XX000';
  END IF;
  IF v_hot THEN
    INSERT INTO ledger.balance_shards AS s (account_id, shard, balance)
    SELECT x.id, (pg_backend_pid() % x.shards)::smallint, (sum(l.amount) * CASE WHEN x.type IN ('asset', 'expense') THEN 1 ELSE -1 END)::bigint
    FROM jsonb_to_recordset(p_lines) AS l(code text, amount bigint)
    CROSS JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = l.code LIMIT 1) x
    WHERE x.shards > 1
    GROUP BY x.id, x.code, x.type, x.shards
    ORDER BY x.code COLLATE "C"
    ON CONFLICT (account_id, shard) DO UPDATE SET balance = s.balance + EXCLUDED.balance;
  END IF;

  -- 5. The postings, in the entry's line order.
  INSERT INTO ledger.postings (entry_id, line, account_id, amount)
  SELECT v_id, l.line, x.id, l.amount
  FROM jsonb_to_recordset(p_lines) AS l(line smallint, code text, amount bigint)
  CROSS JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = l.code LIMIT 1) x;
  GET DIAGNOSTICS v_done = ROW_COUNT;
  IF v_done <> jsonb_array_length(p_lines) THEN
    RAISE EXCEPTION 'ledger entry % % wrote % of % postings', p_kind, p_reference, v_done, jsonb_array_length(p_lines) USING ERRCODE = 'XX000';
  END IF;

  RETURN QUERY SELECT v_id, false;
END
$$;
