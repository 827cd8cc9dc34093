-- Rewards: the earn of a payment's success written by the payment's own completion statement
-- (issue 20, round 2; payments.repo.completeSucceeded and completeSucceededMany, the rewards hook's
-- PaymentHooks.succeededSetSql; src/modules/rewards/README.md "Cost on the payment hot path").
--
-- rewards.earn_in_completion(p_rows, p_plans, p_now) does, for the payments that statement has just
-- moved to succeeded, exactly what the long way does for each (rewards.earn_payment() with the
-- cached program, then points.postEarned()'s ledger entry), or answers false so that the caller
-- abandons the whole statement (TPP01, nothing written) and the long way runs instead.
--   p_rows   [{ id, merchant_id, store_id, created_at, amount, payer_vpa_bidx, legacy_payer }]: the
--            payments' new rows (legacy_payer: the old plaintext payer column is set).
--   p_plans  { <payment id>: plan }: what this process computed from its HINT of the payment (the
--            facts it remembered at the create: merchant, store, created_at, amount, payer) and its
--            cached program and rules, with computeEarn() as the long way computes it:
--            { merchant_id, store_id, created_at, amount, payer_vpa_bidx, payer_hash (hex or null),
--              program_id, version, points, day, day_cap, breakdown, customer_id, lot_id,
--              movement_id, journal_id, accounts: { issued, available, pending } }.
--            accounts: the PTS ledger accounts as ledger.post_entry() takes them, the customer's
--            two with `prefix` in place of `code` (the customer id is only known here).
-- It answers false (the long way) when:
--   * a payment has anything for rewards (a payment link, or a merchant in a program) but no plan;
--   * the row is not what the plan was computed for (merchant, store, created_at, amount, payer):
--     the hint is never trusted;
--   * the program the payment earns in is not the cached one, or not at the cached version
--     (what earn_payment() answers "stale" for), or not active;
--   * the payment has a redemption (its settle is left to points.commit(), the long way).
-- Otherwise it applies, for each payment in id order, what earn_payment() applies (the daily cap
-- against what the customer earned today, the budget, debt repaid first, the lot, the statement
-- line, the counters, the earning) and posts each earn's PTS entry ('rewards.earned', referenced
-- by the payment id, issued debited, the customer's available or pending account credited), all
-- entries by ONE call of ledger.post_entries(), and answers true.
--
-- Lock order, the same global order as the long way (payment row, customer, program budget, PTS
-- accounts, then the INR entry of the payment the caller posts after this): the payments' rows are
-- locked by the caller's compare-and-set; then every customer of the statement is locked in id
-- order (created first where new, in (program, hash) order, as lockOrCreateCustomersBatch does),
-- then every program with a budget in id order, then ledger.post_entries() locks the PTS accounts
-- in code order and the shard rows after them. So a batch of several customers' payments never
-- takes two of those locks in an order another completion (batched or the long way) reverses.
CREATE FUNCTION rewards.earn_in_completion(p_rows jsonb, p_plans jsonb, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_row        jsonb;
  v_plan       jsonb;
  v_program    text;
  v_customer   text;
  v_prog       rewards.programs%ROWTYPE;
  v_cust       rewards.customers%ROWTYPE;
  v_work       jsonb := '[]'::jsonb;   -- [{ plan, program, customer (or null), hash (or null) }]
  v_w          jsonb;
  v_hash       bytea;
  v_points     bigint;
  v_today      bigint;
  v_used       bigint;
  v_budget     bigint;
  v_pending    boolean;
  v_remaining  bigint;
  v_repaid     bigint;
  v_to         jsonb;
  v_to_code    text;
  v_entries    jsonb := '[]'::jsonb;
  v_posted     int;
BEGIN
  IF p_rows IS NULL OR jsonb_array_length(p_rows) = 0 THEN
    RETURN true;
  END IF;
  -- 1. Check every payment against its plan, with no lock taken yet.
  FOR v_row IN SELECT x.value FROM jsonb_array_elements(p_rows) AS x(value) ORDER BY x.value ->> 'id' COLLATE "C" LOOP
    v_program := NULL;
    v_customer := NULL;
    SELECT l.program_id, l.customer_id INTO v_program, v_customer FROM rewards.payment_links l WHERE l.payment_id = v_row ->> 'id';
    IF v_program IS NULL THEN
      SELECT m.program_id INTO v_program FROM rewards.program_merchants m WHERE m.merchant_id = v_row ->> 'merchant_id';
      IF v_program IS NULL THEN
        CONTINUE; -- nothing for rewards (earn_payment() answers "none")
      END IF;
    END IF;
    v_plan := p_plans -> (v_row ->> 'id');
    IF v_plan IS NULL OR jsonb_typeof(v_plan) <> 'object' THEN
      RETURN false;
    END IF;
    IF (v_row ->> 'merchant_id') IS DISTINCT FROM (v_plan ->> 'merchant_id')
       OR (v_row ->> 'store_id') IS DISTINCT FROM (v_plan ->> 'store_id')
       OR (v_row ->> 'created_at')::timestamptz IS DISTINCT FROM (v_plan ->> 'created_at')::timestamptz
       OR (v_row ->> 'amount')::bigint IS DISTINCT FROM (v_plan ->> 'amount')::bigint
       OR (v_row ->> 'payer_vpa_bidx') IS DISTINCT FROM (v_plan ->> 'payer_vpa_bidx')
       OR (v_row ->> 'legacy_payer')::boolean THEN
      RETURN false;
    END IF;
    SELECT * INTO v_prog FROM rewards.programs WHERE id = v_program;
    IF v_prog.id IS DISTINCT FROM (v_plan ->> 'program_id') OR v_prog.version IS DISTINCT FROM (v_plan ->> 'version')::bigint
       OR v_prog.status <> 'active' THEN
      RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM rewards.redemptions d WHERE d.payment_id = v_row ->> 'id') THEN
      RETURN false;
    END IF;
    v_hash := CASE WHEN v_plan ->> 'payer_hash' IS NULL THEN NULL ELSE decode(v_plan ->> 'payer_hash', 'hex') END;
    IF v_customer IS NULL AND v_hash IS NULL THEN
      CONTINUE; -- no customer named and no payer: earn_payment() answers "none"
    END IF;
    v_work := v_work || jsonb_build_array(jsonb_build_object('plan', v_plan, 'program', v_program, 'customer', v_customer,
                                                             'hash', v_plan ->> 'payer_hash'));
  END LOOP;
  IF jsonb_array_length(v_work) = 0 THEN
    RETURN true;
  END IF;

  -- 2. The customers: the payers new to the program created (in (program, hash) order), then all
  -- of them locked in id order; then the budgets in program id order.
  INSERT INTO rewards.customers (id, program_id, customer_hash, created_at)
  SELECT DISTINCT ON (w.value ->> 'program', w.value ->> 'hash')
         w.value -> 'plan' ->> 'customer_id', w.value ->> 'program', decode(w.value ->> 'hash', 'hex'), p_now
    FROM jsonb_array_elements(v_work) AS w(value)
   WHERE w.value ->> 'customer' IS NULL
   ORDER BY w.value ->> 'program', w.value ->> 'hash'
  ON CONFLICT (program_id, customer_hash) DO NOTHING;
  SELECT coalesce(jsonb_agg(CASE WHEN w.value ->> 'customer' IS NOT NULL THEN w.value
                                 ELSE jsonb_set(w.value, '{customer}', to_jsonb(c.id)) END ORDER BY w.n), '[]'::jsonb)
    INTO v_work
    FROM jsonb_array_elements(v_work) WITH ORDINALITY AS w(value, n)
    LEFT JOIN rewards.customers c
      ON w.value ->> 'customer' IS NULL AND c.program_id = w.value ->> 'program' AND c.customer_hash = decode(w.value ->> 'hash', 'hex');
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_work) AS w(value) WHERE w.value ->> 'customer' IS NULL) THEN
    RAISE EXCEPTION 'rewards.earn_in_completion: a customer was neither found nor created' USING ERRCODE = 'XX000';
  END IF;
  PERFORM 1 FROM rewards.customers c
   WHERE c.id = ANY (ARRAY(SELECT DISTINCT w.value ->> 'customer' FROM jsonb_array_elements(v_work) AS w(value)))
   ORDER BY c.id
     FOR UPDATE;
  PERFORM 1 FROM rewards.programs p
   WHERE p.id = ANY (ARRAY(SELECT DISTINCT w.value ->> 'program' FROM jsonb_array_elements(v_work) AS w(value)))
     AND p.budget_points IS NOT NULL
   ORDER BY p.id
     FOR NO KEY UPDATE;

  -- 3. Each earn, as earn_payment() writes it (the customer read again: an earlier payment of the
  -- same customer in this statement has moved its counters).
  FOR v_w IN SELECT w.value FROM jsonb_array_elements(v_work) WITH ORDINALITY AS w(value, n) ORDER BY w.n LOOP
    v_plan := v_w -> 'plan';
    SELECT * INTO v_prog FROM rewards.programs WHERE id = v_w ->> 'program';
    SELECT * INTO v_cust FROM rewards.customers WHERE id = v_w ->> 'customer';
    v_points := (v_plan ->> 'points')::bigint;
    v_today := CASE WHEN v_cust.earn_day = (v_plan ->> 'day')::date THEN v_cust.day_earned ELSE 0 END;
    IF v_plan ->> 'day_cap' IS NOT NULL THEN
      v_points := LEAST(v_points, GREATEST(0, (v_plan ->> 'day_cap')::bigint - v_today));
    END IF;
    IF v_prog.budget_points IS NOT NULL THEN
      v_budget := v_prog.budget_points;
      v_used := v_prog.budget_used;
      v_points := LEAST(v_points, GREATEST(0, v_budget - v_used));
      IF v_points > 0 THEN
        UPDATE rewards.programs SET budget_used = budget_used + v_points WHERE id = v_prog.id;
      END IF;
    END IF;
    v_pending := v_prog.pending_seconds > 0;
    v_repaid := 0;
    IF v_points > 0 THEN
      IF NOT v_pending THEN
        v_repaid := LEAST(v_points, v_cust.debt);
      END IF;
      v_remaining := v_points - v_repaid;
      INSERT INTO rewards.lots (id, program_id, customer_id, source, source_id, points, remaining, status, available_at, expires_at, created_at)
      VALUES (v_plan ->> 'lot_id', v_prog.id, v_cust.id, 'earn', v_plan ->> 'payment_id', v_points, v_remaining,
              CASE WHEN v_pending THEN 'pending' ELSE 'available' END,
              p_now + make_interval(secs => v_prog.pending_seconds),
              CASE WHEN v_prog.validity_days IS NULL THEN NULL ELSE p_now + make_interval(secs => v_prog.validity_days * 86400) END, p_now);
      INSERT INTO rewards.movements (id, program_id, customer_id, kind, available_delta, pending_delta, payment_id, created_at)
      VALUES (v_plan ->> 'movement_id', v_prog.id, v_cust.id, 'earn', CASE WHEN v_pending THEN 0 ELSE v_points END,
              CASE WHEN v_pending THEN v_points ELSE 0 END, v_plan ->> 'payment_id', p_now);
      -- points.postEarned(): issued debited, the customer's pending or available account credited.
      v_to := v_plan -> 'accounts' -> CASE WHEN v_pending THEN 'pending' ELSE 'available' END;
      v_to_code := (v_to ->> 'prefix') || v_cust.id;
      v_entries := v_entries || jsonb_build_array(jsonb_build_object(
        'id', v_plan ->> 'journal_id', 'kind', 'rewards.earned', 'reference', v_plan ->> 'payment_id', 'memo', NULL,
        'accounts', jsonb_build_array(v_plan -> 'accounts' -> 'issued', (v_to - 'prefix') || jsonb_build_object('code', v_to_code)),
        'lines', jsonb_build_array(
          jsonb_build_object('line', 0, 'code', v_plan -> 'accounts' -> 'issued' ->> 'code', 'amount', v_points),
          jsonb_build_object('line', 1, 'code', v_to_code, 'amount', -v_points))));
    END IF;
    UPDATE rewards.customers SET debt = debt - v_repaid, earn_day = (v_plan ->> 'day')::date, day_earned = v_today + v_points
     WHERE id = v_cust.id;
    INSERT INTO rewards.earnings (payment_id, program_id, customer_id, merchant_id, lot_id, amount, points, breakdown, created_at)
    VALUES (v_plan ->> 'payment_id', v_prog.id, v_cust.id, v_plan ->> 'merchant_id', CASE WHEN v_points > 0 THEN v_plan ->> 'lot_id' END,
            (v_plan ->> 'amount')::bigint, v_points, jsonb_set(v_plan -> 'breakdown', '{points}', to_jsonb(v_points)), p_now);
  END LOOP;

  -- 4. The PTS entries, by one call: their plain accounts locked in code order, then the shard rows.
  IF jsonb_array_length(v_entries) > 0 THEN
    SELECT count(*) INTO v_posted FROM ledger.post_entries('PTS', v_entries);
    IF v_posted <> jsonb_array_length(v_entries) THEN
      RAISE EXCEPTION 'rewards.earn_in_completion: % of % ledger entries posted', v_posted, jsonb_array_length(v_entries)
        USING ERRCODE = 'XX000';
    END IF;
  END IF;
  RETURN true;
END
$$;
