-- Reconciliation (src/modules/settlement/recon/README.md): the index recon_item_outcomes_by_file
-- goes.
--
-- Why: a bank file of a million lines writes about a million item outcomes in one statement,
-- and each row paid for two index insertions: the primary key (our_kind, our_id), which is what
-- makes an item matched at most once, and this one, on (file_id, match_group). No statement
-- reads by it: every look-up of an item outcome names the item (the primary key), and the
-- reads by file go through recon_lines, whose primary key starts with file_id.
DROP INDEX IF EXISTS settlement.recon_item_outcomes_by_file;
