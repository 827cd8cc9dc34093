-- Payments: a bank's "paid" answer completed in one statement (issue 20, bench/PROFILE.md "Round 2,
-- session 6"). What this migration is for:
--   * payments.abandon_completion(): raised from inside that statement
--     (payments.repo.completeSucceeded) to roll all of it back, with one of two SQLSTATEs the
--     service tells apart:
--       TPP01  a hook (rewards) has work that only its long way can do (an earn to compute, a
--              redemption to settle): nothing was written; the service completes the payment the
--              long way, in a transaction, as before.
--       TPP02  the callback's nonce was used already: a replay. Nothing was written (the status
--              change, its history, outbox event, hook writes and ledger entry are rolled back
--              with the statement); the service refuses the callback as replayed.
--       TPP03  the statement would have completed the payment without its ledger entry (never
--              expected: ledger.post_entry() returns a row or raises); refused, never committed.
-- The statement runs without BEGIN/COMMIT: a single statement is atomic on its own, so raising
-- from any part of it leaves nothing behind. A function because RAISE is PL/pgSQL, not SQL.
CREATE FUNCTION payments.abandon_completion(p_code text, p_why text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF p_code NOT IN ('TPP01', 'TPP02', 'TPP03') THEN
    RAISE EXCEPTION 'payments.abandon_completion: unknown code %', p_code USING ERRCODE = 'XX000';
  END IF;
  RAISE EXCEPTION 'payment completion abandoned: %', p_why USING ERRCODE = p_code;
END
$$;
