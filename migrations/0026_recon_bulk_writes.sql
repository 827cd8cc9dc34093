-- Reconciliation (src/modules/settlement/recon/README.md): the two tables a bank file writes a
-- row to per line lose their foreign key to recon_files.
--
-- Why: a file of a million lines writes a million rows to recon_lines and about as many to
-- recon_item_outcomes, each in one bulk INSERT ... SELECT. A foreign key checks every row with a
-- trigger of its own: EXPLAIN ANALYZE of a 200,000-line file showed the two checks taking 5.2 s of
-- the lines' 10.7 s and 5.3 s of the first rule's 18.4 s, half of the writing.
--
-- Why it is safe: both tables are written only by recon.repo.ts, in the transaction that inserted
-- the file's row before any line (ingestion), or for a line of a file read from an exception
-- whose own foreign key to recon_files stays (a match by hand); nothing deletes a file. The
-- property test checks that no line and no outcome names a file that does not exist.
ALTER TABLE settlement.recon_lines DROP CONSTRAINT IF EXISTS recon_lines_file_id_fkey;
ALTER TABLE settlement.recon_item_outcomes DROP CONSTRAINT IF EXISTS recon_item_outcomes_file_id_fkey;
