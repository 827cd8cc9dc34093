-- Payments that survive a crash in the middle of their creation.
--
-- client_ref: the caller's own reference for a create (a terminal's MQTT request id, an HTTP
-- Idempotency-Key), unique per terminal. The request-id and Idempotency-Key stores answer a retry
-- with the first response, but a process that dies after the payment is written and before its
-- response is stored leaves a claim that lapses; the retry then runs again, and this index is what
-- makes it find the first payment instead of creating a second one.
ALTER TABLE payments.payments ADD COLUMN client_ref text CHECK (client_ref IS NULL OR length(client_ref) BETWEEN 1 AND 300);
CREATE UNIQUE INDEX payments_client_ref ON payments.payments (terminal_id, client_ref) WHERE client_ref IS NOT NULL;

-- A payment still 'created' at its expiry was written and never confirmed by its bank (the
-- process died around the bank call): the expiry job gives it its final check too, so it ends
-- failed or, if the bank did take it, follows the bank.
DROP INDEX payments.payments_due_expiry;
CREATE INDEX payments_due_expiry ON payments.payments (expires_at) WHERE status IN ('created', 'pending');
