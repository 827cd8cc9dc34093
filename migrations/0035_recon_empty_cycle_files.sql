-- Reconciliation (src/modules/settlement/recon/README.md): a bank's file for a cycle with no
-- transactions is accepted for every such cycle.
--
-- Why: a file is ingested once, and "once" was checked by its bytes (UNIQUE (bank_code, sha256))
-- as well as by its cycle (UNIQUE (bank_code, cycle_key)). A bank whose files name their cycle in
-- the file name sends, for a cycle without transactions, its header alone: the same bytes every
-- such cycle. The second empty cycle's file was then answered `already_ingested`, and that cycle
-- never got its file. The bytes now make a file a duplicate only when it has lines; an empty one
-- is a duplicate only of the same cycle's, which UNIQUE (bank_code, cycle_key) still enforces.
-- The same file with lines sent again under another cycle's name is still refused.
--
-- The row is written (lines = 0) before its lines are counted and updated in the same
-- transaction: two ingests of one non-empty file at once meet on this index when the second
-- sets its count, and the second is answered as before (recon.service.ts, unique violation).
ALTER TABLE settlement.recon_files DROP CONSTRAINT recon_files_bank_code_sha256_key;
CREATE UNIQUE INDEX recon_files_same_content ON settlement.recon_files (bank_code, sha256) WHERE lines > 0;
