-- Reward points: programs and their earn rules, customers (by keyed hash only), lots, earnings,
-- redemptions and the statement. Invariants are in src/modules/rewards/README.md; every point
-- movement is also a double-entry posting in the ledger's 'PTS' book. Only the rewards module
-- writes these tables.
CREATE SCHEMA IF NOT EXISTS rewards;

CREATE TABLE rewards.programs (
  id                     text        PRIMARY KEY,                 -- 'prg_…'
  owner_merchant_id      text,                                    -- NULL: a platform-run coalition
  name                   text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 99),
  status                 text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  point_value_paise      bigint      NOT NULL CHECK (point_value_paise BETWEEN 1 AND 100000),
  -- Base earn rate: earn_points for every earn_per_paise spent, rounded once per payment.
  earn_points            bigint      NOT NULL CHECK (earn_points BETWEEN 0 AND 1000000),
  earn_per_paise         bigint      NOT NULL CHECK (earn_per_paise BETWEEN 1 AND 1000000000),
  rounding               text        NOT NULL CHECK (rounding IN ('down', 'nearest', 'up')),
  timezone               text        NOT NULL,                    -- for time windows and the daily cap
  pending_seconds        integer     NOT NULL DEFAULT 0 CHECK (pending_seconds >= 0),
  validity_days          integer              CHECK (validity_days IS NULL OR validity_days > 0),
  -- Fixed at creation: it is the floor of every customer's ledger account in this program.
  allow_negative_balance boolean     NOT NULL DEFAULT false,
  budget_points          bigint               CHECK (budget_points IS NULL OR budget_points >= 0),
  budget_used            bigint      NOT NULL DEFAULT 0 CHECK (budget_used >= 0),
  redeem_min_points      bigint      NOT NULL DEFAULT 1 CHECK (redeem_min_points >= 1),
  redeem_max_basket_bp   integer     NOT NULL DEFAULT 10000 CHECK (redeem_max_basket_bp BETWEEN 1 AND 10000),
  -- Raised by every change to the program or its rules: a process that cached them (the earn
  -- path does) learns from rewards.earn_payment() that its copy is stale.
  version                bigint      NOT NULL DEFAULT 1,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT programs_within_budget CHECK (budget_points IS NULL OR budget_used <= budget_points),
  CONSTRAINT programs_pending_within_validity CHECK (validity_days IS NULL OR pending_seconds < validity_days * 86400)
);
-- A merchant owns at most one program.
CREATE UNIQUE INDEX programs_one_per_owner ON rewards.programs (owner_merchant_id) WHERE owner_merchant_id IS NOT NULL;

-- Which program a merchant's customers earn and burn in: its own, or the coalition it joined.
CREATE TABLE rewards.program_merchants (
  merchant_id text        PRIMARY KEY,                            -- one program per merchant
  program_id  text        NOT NULL REFERENCES rewards.programs (id),
  mcc         char(4)     NOT NULL CHECK (mcc ~ '^[0-9]{4}$'),    -- copied at join; a merchant's MCC never changes
  joined_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX program_merchants_by_program ON rewards.program_merchants (program_id, merchant_id);

-- Earn rules are data: validated by rules.ts, evaluated by computeEarn(). value is the
-- multiplier in basis points, the minimum spend in paise, or the cap in points.
CREATE TABLE rewards.earn_rules (
  id          text        PRIMARY KEY,                            -- 'rul_…'
  program_id  text        NOT NULL REFERENCES rewards.programs (id),
  kind        text        NOT NULL CHECK (kind IN ('multiplier', 'minimum_spend', 'cap_per_transaction', 'cap_per_customer_day')),
  value       bigint      NOT NULL CHECK (value >= 0),
  conditions  jsonb       NOT NULL DEFAULT '{}',
  description text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX earn_rules_by_program ON rewards.earn_rules (program_id, id);

-- A customer of one program, known only by HMAC-SHA-256(key, "vpa:<vpa>" | "phone:+91…").
-- The raw VPA or phone never reaches this schema. The row is the lock for the customer's lots.
CREATE TABLE rewards.customers (
  id            text        PRIMARY KEY,                          -- 'cus_…'
  program_id    text        NOT NULL REFERENCES rewards.programs (id),
  customer_hash bytea       NOT NULL CHECK (octet_length(customer_hash) = 32),
  -- Points owed after a clawback in a program that allows negative balances; repaid first by
  -- the next points that become available.
  debt          bigint      NOT NULL DEFAULT 0 CHECK (debt >= 0),
  -- Clawbacks that found no points and were not allowed to go negative: recorded, not posted.
  shortfall     bigint      NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
  -- Points earned on earn_day (program timezone), for the per-customer daily cap.
  earn_day      date,
  day_earned    bigint      NOT NULL DEFAULT 0 CHECK (day_earned >= 0),
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (program_id, customer_hash)
);

-- Points live in lots. Redemption, clawback and expiry take from lots oldest first; a lot
-- never goes negative.
CREATE TABLE rewards.lots (
  id           text        PRIMARY KEY,                           -- 'lot_…', time-ordered: oldest first
  program_id   text        NOT NULL REFERENCES rewards.programs (id),
  customer_id  text        NOT NULL REFERENCES rewards.customers (id),
  source       text        NOT NULL CHECK (source IN ('earn', 'adjustment')),
  source_id    text        NOT NULL,                              -- payment id or adjustment id
  points       bigint      NOT NULL CHECK (points > 0),
  remaining    bigint      NOT NULL CHECK (remaining >= 0),
  expired      bigint      NOT NULL DEFAULT 0 CHECK (expired >= 0),
  status       text        NOT NULL CHECK (status IN ('pending', 'available')),
  available_at timestamptz NOT NULL,
  expires_at   timestamptz,
  created_at   timestamptz NOT NULL,
  CHECK (remaining <= points)
);
CREATE INDEX lots_open_by_customer ON rewards.lots (customer_id, id) WHERE remaining > 0;
CREATE INDEX lots_due_expiry ON rewards.lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX lots_due_available ON rewards.lots (available_at) WHERE status = 'pending';

-- What a payment earned, and what refunds took back (pro rata) or could not take back.
CREATE TABLE rewards.earnings (
  payment_id  text        PRIMARY KEY,
  program_id  text        NOT NULL REFERENCES rewards.programs (id),
  customer_id text        NOT NULL REFERENCES rewards.customers (id),
  merchant_id text        NOT NULL,
  lot_id      text        REFERENCES rewards.lots (id),           -- NULL when it earned 0
  amount      bigint      NOT NULL CHECK (amount > 0),            -- the UPI paise the points were earned on
  points      bigint      NOT NULL CHECK (points >= 0),
  clawed_back bigint      NOT NULL DEFAULT 0 CHECK (clawed_back >= 0),
  shortfall   bigint      NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
  breakdown   jsonb       NOT NULL,                               -- which rules applied, for support
  created_at  timestamptz NOT NULL,
  CHECK (clawed_back + shortfall <= points)
);

-- Points burnt at the till: reserved when the payment is created, committed when it succeeds,
-- released when it fails or expires; returned pro rata when it is refunded.
CREATE TABLE rewards.redemptions (
  id              text        PRIMARY KEY,                        -- 'rdm_…'
  payment_id      text        NOT NULL UNIQUE,
  program_id      text        NOT NULL REFERENCES rewards.programs (id),
  customer_id     text        NOT NULL REFERENCES rewards.customers (id),
  merchant_id     text        NOT NULL,
  points          bigint      NOT NULL CHECK (points > 0),
  value_paise     bigint      NOT NULL CHECK (value_paise > 0),
  mode            text        NOT NULL CHECK (mode IN ('discount', 'split_tender')),
  status          text        NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
  points_returned bigint      NOT NULL DEFAULT 0 CHECK (points_returned BETWEEN 0 AND points),
  created_at      timestamptz NOT NULL,
  settled_at      timestamptz
);
CREATE INDEX redemptions_by_customer ON rewards.redemptions (customer_id, id);

-- Which lots a redemption took its points from, so a release or a refund puts them back where
-- they came from (with their original expiry).
CREATE TABLE rewards.lot_consumptions (
  redemption_id text   NOT NULL REFERENCES rewards.redemptions (id),
  lot_id        text   NOT NULL REFERENCES rewards.lots (id),
  points        bigint NOT NULL CHECK (points > 0),
  returned      bigint NOT NULL DEFAULT 0 CHECK (returned BETWEEN 0 AND points),
  PRIMARY KEY (redemption_id, lot_id)
);

-- The customer identified at the till for a payment (earns to them rather than the payer).
CREATE TABLE rewards.payment_links (
  payment_id  text        PRIMARY KEY,
  program_id  text        NOT NULL REFERENCES rewards.programs (id),
  customer_id text        NOT NULL REFERENCES rewards.customers (id),
  created_at  timestamptz NOT NULL
);

CREATE TABLE rewards.adjustments (
  id          text        PRIMARY KEY,                            -- 'adj_…'
  program_id  text        NOT NULL REFERENCES rewards.programs (id),
  customer_id text        NOT NULL REFERENCES rewards.customers (id),
  points      bigint      NOT NULL CHECK (points <> 0),
  reason      text        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 200),
  actor       text        NOT NULL,                               -- the API key (or operator) that made it
  created_at  timestamptz NOT NULL
);

-- The customer's statement: one row per change of available or pending points.
CREATE TABLE rewards.movements (
  id              text        PRIMARY KEY,                        -- 'mov_…', time-ordered
  program_id      text        NOT NULL REFERENCES rewards.programs (id),
  customer_id     text        NOT NULL REFERENCES rewards.customers (id),
  kind            text        NOT NULL CHECK (kind IN ('earn', 'mature', 'redeem', 'release', 'clawback', 'return', 'expire', 'adjustment', 'shortfall')),
  available_delta bigint      NOT NULL,
  pending_delta   bigint      NOT NULL,
  payment_id      text,
  reference       text,                                           -- refund, adjustment, redemption or lot id
  detail          text,
  created_at      timestamptz NOT NULL
);
CREATE INDEX movements_by_customer ON rewards.movements (customer_id, id DESC);

-- The payment hot path as two functions. PL/pgSQL keeps the plans of the statements inside
-- them for the session, so an earn is not parsed and planned again for every payment, and each
-- is one round trip (src/modules/rewards/README.md, "Cost on the payment hot path").

-- Everything a succeeded payment needs: the program (the one the customer was linked to at the
-- till, else the merchant's), its rules, the customer row locked, the budget locked when the
-- program has one, and any redemption. NULL: the merchant is in no program.
CREATE FUNCTION rewards.payment_context(p_merchant text, p_payment text, p_payer bytea) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v_program  text;
  v_customer text;
  v_prog     jsonb;
  v_cust     jsonb;
  v_budget   bigint;
BEGIN
  SELECT program_id, customer_id INTO v_program, v_customer FROM rewards.payment_links WHERE payment_id = p_payment;
  IF v_program IS NULL THEN
    SELECT program_id INTO v_program FROM rewards.program_merchants WHERE merchant_id = p_merchant;
    IF v_program IS NULL THEN
      RETURN NULL;
    END IF;
  END IF;
  SELECT to_jsonb(p.*) INTO v_prog FROM rewards.programs p WHERE p.id = v_program;
  IF v_customer IS NOT NULL THEN
    SELECT jsonb_build_object('id', c.id, 'program_id', c.program_id, 'debt', c.debt, 'shortfall', c.shortfall,
                              'earn_day', c.earn_day::text, 'day_earned', c.day_earned)
      INTO v_cust FROM rewards.customers c WHERE c.id = v_customer FOR UPDATE;
  ELSIF p_payer IS NOT NULL THEN
    SELECT jsonb_build_object('id', c.id, 'program_id', c.program_id, 'debt', c.debt, 'shortfall', c.shortfall,
                              'earn_day', c.earn_day::text, 'day_earned', c.day_earned)
      INTO v_cust FROM rewards.customers c WHERE c.program_id = v_program AND c.customer_hash = p_payer FOR UPDATE;
  END IF;
  IF v_prog->>'budget_points' IS NOT NULL THEN
    -- The program again, under its row lock: the budget and what is used of it as of now, so
    -- concurrent earns (and a concurrent change of the budget) never grant more than it.
    SELECT to_jsonb(p.*) INTO v_prog FROM rewards.programs p WHERE p.id = v_program FOR NO KEY UPDATE;
    v_budget := (v_prog->>'budget_used')::bigint;
  END IF;
  RETURN jsonb_build_object(
    'program', v_prog,
    'mcc', (SELECT mcc FROM rewards.program_merchants WHERE merchant_id = p_merchant AND program_id = v_program),
    'rules', coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'kind', r.kind, 'value', r.value, 'conditions', r.conditions) ORDER BY r.id)
                         FROM rewards.earn_rules r WHERE r.program_id = v_program), '[]'::jsonb),
    'customer', v_cust,
    'budget_used', v_budget,
    'redemption', (SELECT to_jsonb(d.*) FROM rewards.redemptions d WHERE d.payment_id = p_payment));
END
$$;

-- One earn: the customer's counters, the program budget, the lot (when points > 0), the earning
-- and the statement line.
CREATE FUNCTION rewards.write_earn(
  p_customer text, p_debt bigint, p_day date, p_day_earned bigint, p_program text, p_budget_delta bigint,
  p_lot text, p_payment text, p_merchant text, p_points bigint, p_remaining bigint, p_status text,
  p_available_at timestamptz, p_expires_at timestamptz, p_now timestamptz, p_amount bigint, p_breakdown jsonb,
  p_movement text, p_available_delta bigint, p_pending_delta bigint
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE rewards.customers SET debt = p_debt, earn_day = p_day, day_earned = p_day_earned WHERE id = p_customer;
  IF p_budget_delta > 0 THEN
    UPDATE rewards.programs SET budget_used = budget_used + p_budget_delta WHERE id = p_program;
  END IF;
  IF p_lot IS NOT NULL THEN
    INSERT INTO rewards.lots (id, program_id, customer_id, source, source_id, points, remaining, status, available_at, expires_at, created_at)
    VALUES (p_lot, p_program, p_customer, 'earn', p_payment, p_points, p_remaining, p_status, p_available_at, p_expires_at, p_now);
  END IF;
  INSERT INTO rewards.earnings (payment_id, program_id, customer_id, merchant_id, lot_id, amount, points, breakdown, created_at)
  VALUES (p_payment, p_program, p_customer, p_merchant, p_lot, p_amount, coalesce(p_points, 0), p_breakdown, p_now);
  IF p_movement IS NOT NULL THEN
    INSERT INTO rewards.movements (id, program_id, customer_id, kind, available_delta, pending_delta, payment_id, created_at)
    VALUES (p_movement, p_program, p_customer, 'earn', p_available_delta, p_pending_delta, p_payment, p_now);
  END IF;
END
$$;

-- An earn in one round trip, for a process that has the program and its rules cached: the
-- caller computed the points with computeEarn() (base rate, multipliers, minimum spend, the
-- per-payment cap, the daily cap as if nothing was earned today yet); this applies what only the
-- locked rows know (the daily cap against what the customer earned today, the budget, debt) and
-- writes the lot, the earning, the statement line and the counters. It returns:
--   {"state": "none"}                      no program for the merchant and no customer to earn
--   {"state": "stale", "ctx": …}           the cached program is not the current one: here is
--                                          payment_context(); the caller earns the long way
--   {"state": "inactive", "redemption": …} the program is paused
--   {"state": "earned", "customer_id", "points", "pending", "redemption"}
-- and any redemption of the payment, for the caller to settle.
CREATE FUNCTION rewards.earn_payment(
  p_merchant text, p_payment text, p_payer bytea, p_program text, p_version bigint, p_points bigint, p_day date,
  p_day_cap bigint, p_amount bigint, p_breakdown jsonb, p_customer_id text, p_lot text, p_movement text, p_now timestamptz
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_program    text;
  v_customer   text;
  v_prog       rewards.programs%ROWTYPE;
  v_cust       rewards.customers%ROWTYPE;
  v_redemption jsonb;
  v_points     bigint := p_points;
  v_today      bigint;
  v_used       bigint;
  v_budget     bigint;
  v_pending    boolean;
  v_remaining  bigint;
  v_repaid     bigint := 0;
BEGIN
  SELECT program_id, customer_id INTO v_program, v_customer FROM rewards.payment_links WHERE payment_id = p_payment;
  IF v_program IS NULL THEN
    SELECT program_id INTO v_program FROM rewards.program_merchants WHERE merchant_id = p_merchant;
    IF v_program IS NULL THEN
      RETURN jsonb_build_object('state', 'none');
    END IF;
  END IF;
  SELECT * INTO v_prog FROM rewards.programs WHERE id = v_program;
  IF p_program IS NULL OR v_prog.id <> p_program OR v_prog.version <> p_version THEN
    RETURN jsonb_build_object('state', 'stale', 'ctx', rewards.payment_context(p_merchant, p_payment, p_payer));
  END IF;
  SELECT to_jsonb(d.*) INTO v_redemption FROM rewards.redemptions d WHERE d.payment_id = p_payment;
  IF v_prog.status <> 'active' THEN
    RETURN jsonb_build_object('state', 'inactive', 'redemption', v_redemption);
  END IF;
  IF v_customer IS NOT NULL THEN
    SELECT * INTO v_cust FROM rewards.customers WHERE id = v_customer FOR UPDATE;
  ELSIF p_payer IS NULL THEN
    RETURN jsonb_build_object('state', 'none', 'redemption', v_redemption);
  ELSE
    SELECT * INTO v_cust FROM rewards.customers WHERE program_id = v_program AND customer_hash = p_payer FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO rewards.customers (id, program_id, customer_hash, created_at) VALUES (p_customer_id, v_program, p_payer, p_now)
      ON CONFLICT (program_id, customer_hash) DO NOTHING RETURNING * INTO v_cust;
      IF NOT FOUND THEN -- created by a concurrent transaction: wait for it
        SELECT * INTO v_cust FROM rewards.customers WHERE program_id = v_program AND customer_hash = p_payer FOR UPDATE;
      END IF;
    END IF;
  END IF;
  v_today := CASE WHEN v_cust.earn_day = p_day THEN v_cust.day_earned ELSE 0 END;
  IF p_day_cap IS NOT NULL THEN
    v_points := LEAST(v_points, GREATEST(0, p_day_cap - v_today));
  END IF;
  IF v_prog.budget_points IS NOT NULL THEN
    -- Under the row lock: what is used now, and the budget as of now.
    SELECT budget_points, budget_used INTO v_budget, v_used FROM rewards.programs WHERE id = v_program FOR NO KEY UPDATE;
    v_points := LEAST(v_points, GREATEST(0, coalesce(v_budget, v_points + v_used) - v_used));
    IF v_points > 0 THEN
      UPDATE rewards.programs SET budget_used = budget_used + v_points WHERE id = v_program;
    END IF;
  END IF;
  v_pending := v_prog.pending_seconds > 0;
  IF v_points > 0 THEN
    -- Points entering the available bucket repay any debt first.
    IF NOT v_pending THEN
      v_repaid := LEAST(v_points, v_cust.debt);
    END IF;
    v_remaining := v_points - v_repaid;
    INSERT INTO rewards.lots (id, program_id, customer_id, source, source_id, points, remaining, status, available_at, expires_at, created_at)
    VALUES (p_lot, v_program, v_cust.id, 'earn', p_payment, v_points, v_remaining, CASE WHEN v_pending THEN 'pending' ELSE 'available' END,
            p_now + make_interval(secs => v_prog.pending_seconds),
            CASE WHEN v_prog.validity_days IS NULL THEN NULL ELSE p_now + make_interval(secs => v_prog.validity_days * 86400) END, p_now);
    INSERT INTO rewards.movements (id, program_id, customer_id, kind, available_delta, pending_delta, payment_id, created_at)
    VALUES (p_movement, v_program, v_cust.id, 'earn', CASE WHEN v_pending THEN 0 ELSE v_points END, CASE WHEN v_pending THEN v_points ELSE 0 END, p_payment, p_now);
  END IF;
  UPDATE rewards.customers SET debt = debt - v_repaid, earn_day = p_day, day_earned = v_today + v_points WHERE id = v_cust.id;
  INSERT INTO rewards.earnings (payment_id, program_id, customer_id, merchant_id, lot_id, amount, points, breakdown, created_at)
  VALUES (p_payment, v_program, v_cust.id, p_merchant, CASE WHEN v_points > 0 THEN p_lot END, p_amount, v_points,
          jsonb_set(p_breakdown, '{points}', to_jsonb(v_points)), p_now);
  RETURN jsonb_build_object('state', 'earned', 'customer_id', v_cust.id, 'points', v_points, 'pending', v_pending, 'redemption', v_redemption);
END
$$;
