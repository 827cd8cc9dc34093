-- Ledger (src/modules/ledger/README.md): the entries of one ledger.post_entries() call written
-- together, a handful of statements for the whole batch instead of ~7 per entry.
--
-- Why: in bench:payments at peak a completion batch carries ~13 entries, and the loop of
-- post_entry() calls was 62 % of the completion statement's server time (0.31 ms per entry, most
-- of it plpgsql running seven statements and parsing the same jsonb for each; pg_stat_statements
-- with track = all, bench/PROFILE.md "Session 11").
--
-- When: every account the entries name already exists as they name it (type, floor, shards: no
-- account to create, to refuse or to spread over more rows) and none of the accounts their lines
-- move has a floor. Then no entry can be refused for its accounts, and without floors the order in
-- which the entries move a balance cannot change the outcome, so each account moves once by the
-- sum of its lines. Otherwise (a first payment of a merchant, a floored account such as a rewards
-- customer's, anything post_entry() would refuse) each entry is posted by post_entry() as before,
-- with its checks and refusals (TPL01-TPL04) in the order of the entries.
--
-- What stays the same: the up-front locks (every plain account in code order, then this
-- session's shard row of every hot account in code order), the duplicate rule (an entry whose
-- (book, kind, reference) is already posted, by an earlier call or earlier in this array, is
-- handed to post_entry(), which answers duplicate or raises TPL04 when its lines differ), and the
-- result: one row per entry, in the array's order. ledger.batch.test.ts posts the same batches
-- both ways and compares every balance, posting and answer.
CREATE OR REPLACE FUNCTION ledger.post_entries(p_book text, p_entries jsonb)
RETURNS TABLE (reference text, journal_id text, duplicate boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_entry jsonb;
  v_together boolean;
  v_new text[];
  v_want int;
  v_done int;
  v_lines int;
  v_posted int;
BEGIN
  IF p_entries IS NULL OR jsonb_array_length(p_entries) = 0 THEN
    RETURN;
  END IF;
  -- 1. Every plain account the entries move, in code order.
  PERFORM 1 FROM ledger.accounts a
   WHERE a.book = p_book AND a.shards = 1
     AND a.code = ANY (ARRAY(SELECT DISTINCT l.code FROM jsonb_array_elements(p_entries) e
                              CROSS JOIN LATERAL jsonb_to_recordset(e.value -> 'lines') AS l(code text)))
   ORDER BY a.code COLLATE "C"
     FOR NO KEY UPDATE OF a;
  -- 2. This session's shard row of every hot account they move, in code order.
  PERFORM 1 FROM ledger.balance_shards s
    JOIN ledger.accounts a ON a.id = s.account_id
   WHERE a.book = p_book AND a.shards > 1 AND s.shard = (pg_backend_pid() % a.shards)
     AND a.code = ANY (ARRAY(SELECT DISTINCT l.code FROM jsonb_array_elements(p_entries) e
                              CROSS JOIN LATERAL jsonb_to_recordset(e.value -> 'lines') AS l(code text)))
   ORDER BY a.code COLLATE "C"
     FOR UPDATE OF s;

  -- 3. Can they be written together? Each entry has a journal id of its own (the answers below are
  -- matched by it); each account named must exist as named, with no floor; each line's account
  -- must exist, with no floor. (The lookups are by (book, code), one at a time, as in
  -- post_entry(): see its note on jsonb_to_recordset()'s row estimate.)
  SELECT (SELECT count(DISTINCT e.value ->> 'id') FROM jsonb_array_elements(p_entries) e) = jsonb_array_length(p_entries)
     AND NOT EXISTS (
           SELECT 1
             FROM jsonb_array_elements(p_entries) e
            CROSS JOIN LATERAL jsonb_to_recordset(e.value -> 'accounts')
                  AS a(code text, type text, floor bigint, floor_given boolean, shards smallint)
             LEFT JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = a.code LIMIT 1) x ON true
            WHERE x.id IS NULL OR x.type <> a.type OR x.floor IS NOT NULL OR a.floor IS NOT NULL
               OR x.shards < coalesce(a.shards, 1))
     AND NOT EXISTS (
           SELECT 1
             FROM jsonb_array_elements(p_entries) e
            CROSS JOIN LATERAL jsonb_to_recordset(e.value -> 'lines') AS l(code text)
             LEFT JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = l.code LIMIT 1) x ON true
            WHERE x.id IS NULL OR x.floor IS NOT NULL)
    INTO v_together;

  IF v_together THEN
    -- 4. The entries first, in the array's order: one already posted (or earlier in the array) is
    -- not inserted and is left to step 5.
    WITH ins AS (
      INSERT INTO ledger.entries (id, book, kind, reference, memo)
      SELECT e.value ->> 'id', p_book, e.value ->> 'kind', e.value ->> 'reference', e.value ->> 'memo'
        FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS e(value, n)
       ORDER BY e.n
      ON CONFLICT (book, kind, reference) DO NOTHING
      RETURNING id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_new FROM ins;

    -- The lines of the inserted entries with their accounts; each account moved once by the sum
    -- of its lines (a plain one through checked_balance(), as post_entry() does; a hot one on this
    -- session's shard row, in code order); the postings in each entry's line order.
    WITH l AS MATERIALIZED (
      SELECT e.value ->> 'id' AS entry_id, l.line, l.amount, x.id AS account_id, x.code, x.type, x.shards
        FROM jsonb_array_elements(p_entries) e
       CROSS JOIN LATERAL jsonb_to_recordset(e.value -> 'lines') AS l(line smallint, code text, amount bigint)
       CROSS JOIN LATERAL (SELECT * FROM ledger.accounts x0 WHERE x0.book = p_book AND x0.code = l.code LIMIT 1) x
       WHERE e.value ->> 'id' = ANY (v_new)
    ),
    d AS MATERIALIZED (
      SELECT l.account_id, l.code, l.shards,
             (sum(l.amount) * CASE WHEN l.type IN ('asset', 'expense') THEN 1 ELSE -1 END)::bigint AS delta
        FROM l GROUP BY l.account_id, l.code, l.type, l.shards
    ),
    moved AS (
      UPDATE ledger.accounts a
         SET balance = ledger.checked_balance(a.book, a.code, a.balance + d.delta, a.floor)
        FROM d
       WHERE a.id = d.account_id AND d.shards = 1 AND d.delta <> 0
      RETURNING 1
    ),
    hot AS (
      INSERT INTO ledger.balance_shards AS s (account_id, shard, balance)
      SELECT d.account_id, (pg_backend_pid() % d.shards)::smallint, d.delta
        FROM d WHERE d.shards > 1
       ORDER BY d.code COLLATE "C"
      ON CONFLICT (account_id, shard) DO UPDATE SET balance = s.balance + EXCLUDED.balance
    ),
    posted AS (
      INSERT INTO ledger.postings (entry_id, line, account_id, amount)
      SELECT l.entry_id, l.line, l.account_id, l.amount FROM l
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM d WHERE d.shards = 1 AND d.delta <> 0), (SELECT count(*) FROM moved),
           (SELECT count(*) FROM posted),
           (SELECT count(*) FROM jsonb_array_elements(p_entries) e
             CROSS JOIN LATERAL jsonb_array_elements(e.value -> 'lines') AS x
             WHERE e.value ->> 'id' = ANY (v_new))
      INTO v_want, v_done, v_posted, v_lines;
    IF v_done <> v_want THEN
      RAISE EXCEPTION 'ledger entries moved % of % balances', v_done, v_want USING ERRCODE = 'XX000';
    END IF;
    IF v_posted <> v_lines THEN
      RAISE EXCEPTION 'ledger entries wrote % of % postings', v_posted, v_lines USING ERRCODE = 'XX000';
    END IF;
  ELSE
    v_new := '{}'; -- none written together: step 5 posts every entry one by one
  END IF;

  -- 5. The answers, in the array's order. An entry not written in step 4 is posted by post_entry(),
  -- as one entry (with its checks and refusals, TPL01-TPL04), or, when step 4 found it posted
  -- already, answered duplicate (or refused with TPL04 when its lines differ).
  FOR v_entry IN SELECT e.value FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS e(value, n) ORDER BY e.n LOOP
    IF v_entry ->> 'id' = ANY (v_new) THEN
      reference := v_entry ->> 'reference';
      journal_id := v_entry ->> 'id';
      duplicate := false;
      RETURN NEXT;
    ELSE
      RETURN QUERY
        SELECT v_entry ->> 'reference', x.journal_id, x.duplicate
          FROM ledger.post_entry(v_entry ->> 'id', p_book, v_entry ->> 'kind', v_entry ->> 'reference',
                                 v_entry ->> 'memo', v_entry -> 'accounts', v_entry -> 'lines') AS x;
    END IF;
  END LOOP;
END
$$;
