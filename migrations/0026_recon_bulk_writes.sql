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

-- Lines are now written once, with their outcome (no longer inserted and then updated by every
-- rule), so the room kept free in each page for those updates (fillfactor 60) is no longer
-- needed: full pages mean 40 % fewer pages to write for a file. A match by hand still updates
-- one line, which finds room or not as in any table. Applies to pages written from now on.
ALTER TABLE settlement.recon_lines SET (fillfactor = 100);
