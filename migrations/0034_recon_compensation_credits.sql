-- Reconciliation (src/modules/settlement/recon/README.md): the banks' settlement-file lines for
-- compensation push credits are matched too.
--
-- Why: settlement pays the RBI's compensation for a late reversal by a push credit
-- (settlement.compensations, migration 0027); the bank lists each credit it paid in its
-- settlement file, as a debit of our account like a refund. Reconciliation matches those lines
-- with our paid compensations, so an item of ours may now be a `compensation` (its id
-- `<payment_id>:<day>`, stable across an operator's retry), beside payments and refunds:
--   - the our_kind checks of recon_lines and recon_item_outcomes, and the match_kind check of
--     recon_exceptions, name it;
--   - an exception about a compensation names it in compensation_id (payment_id is still its
--     payment), and the one open `missing` exception per item counts a compensation as its own
--     item (otherwise each day's credit of one payment, and the payment itself, would collide).
ALTER TABLE settlement.recon_lines DROP CONSTRAINT recon_lines_our_kind_check;
ALTER TABLE settlement.recon_lines
  ADD CONSTRAINT recon_lines_our_kind_check CHECK (our_kind IN ('payment', 'refund', 'compensation'));
ALTER TABLE settlement.recon_item_outcomes DROP CONSTRAINT recon_item_outcomes_our_kind_check;
ALTER TABLE settlement.recon_item_outcomes
  ADD CONSTRAINT recon_item_outcomes_our_kind_check CHECK (our_kind IN ('payment', 'refund', 'compensation'));
ALTER TABLE settlement.recon_exceptions DROP CONSTRAINT recon_exceptions_match_kind_check;
ALTER TABLE settlement.recon_exceptions
  ADD CONSTRAINT recon_exceptions_match_kind_check CHECK (match_kind IN ('payment', 'refund', 'compensation'));

ALTER TABLE settlement.recon_exceptions ADD COLUMN compensation_id text;
DROP INDEX settlement.recon_exceptions_open_item;
-- One open "missing" and one open "flagged" exception per payment, refund or compensation at a time.
CREATE UNIQUE INDEX recon_exceptions_open_item ON settlement.recon_exceptions (kind, coalesce(compensation_id, refund_id, payment_id))
  WHERE line_no IS NULL AND status <> 'resolved';
