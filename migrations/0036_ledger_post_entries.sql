-- Ledger (src/modules/ledger/README.md): several entries posted by one call, for the group commit
-- of payment completions (payments.repo.completeSucceededMany, bench/PROFILE.md "Session 8").
--
-- Why a function of its own: ledger.post_entry() locks one entry's accounts in a safe order (plain
-- accounts in code order, then the hot accounts' shard rows). Several entries posted one after
-- another in one transaction would lock the accounts of the first entry, then of the second, and
-- so on: two transactions holding entries for two merchants in opposite orders (or the same
-- clearing shard row reached through two banks) could each wait for the other, a deadlock that
-- PostgreSQL breaks only after deadlock_timeout. post_entries() first locks every plain account
-- of every entry in code order, then the shard rows of this session for every hot account in
-- code order, and only then posts each entry with post_entry() (which finds its locks held and
-- does everything else as for one entry: the checks, the refusals TPL01-TPL04, the duplicate
-- rule). So a batch takes its ledger locks in the same global order as a single entry does.
--
-- An account that does not exist yet has no row to lock: post_entry() creates it as before. Only
-- the first payment of a merchant (or at a bank) meets that; a deadlock there is broken by
-- PostgreSQL and the caller's batch is retried member by member.
--
--   p_entries [{ id, kind, reference, memo, accounts, lines }], accounts and lines as post_entry's.
-- Returns one row per entry, in the array's order.
CREATE FUNCTION ledger.post_entries(p_book text, p_entries jsonb)
RETURNS TABLE (reference text, journal_id text, duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_entry jsonb;
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
  -- 3. Each entry, as post_entry() posts one.
  FOR v_entry IN SELECT e.value FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS e(value, n) ORDER BY e.n LOOP
    RETURN QUERY
      SELECT v_entry ->> 'reference', x.journal_id, x.duplicate
        FROM ledger.post_entry(v_entry ->> 'id', p_book, v_entry ->> 'kind', v_entry ->> 'reference',
                               v_entry ->> 'memo', v_entry -> 'accounts', v_entry -> 'lines') AS x;
  END LOOP;
END
$$;
