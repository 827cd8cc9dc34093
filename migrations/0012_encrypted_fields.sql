-- Field encryption for data other modules own (the vault module encrypts; see its README).
-- Ciphertext columns carry "tp1.<purpose>.<key version>.<payload>"; blind indexes
-- "v<version>.<HMAC-SHA-256>" so lookups by value need no plaintext in the database.

-- The payer's VPA: payments.payer_vpa stays only as the legacy plaintext column, emptied by the
-- vault's background re-encryption; new rows never write it.
ALTER TABLE payments.payments ADD COLUMN payer_vpa_ct text, ADD COLUMN payer_vpa_bidx text;
CREATE INDEX payments_by_payer_vpa ON payments.payments (payer_vpa_bidx) WHERE payer_vpa_bidx IS NOT NULL;

-- Where a merchant is paid out: account number and IFSC, encrypted. The last 4 digits of the
-- account and the bank code (first 4 letters of the IFSC) are what screens show.
ALTER TABLE merchants.merchants
  ADD COLUMN settlement_account_ct    text,
  ADD COLUMN settlement_ifsc_ct       text,
  ADD COLUMN settlement_account_last4 text CHECK (settlement_account_last4 ~ '^[0-9]{4}$'),
  ADD COLUMN settlement_bank_code     text CHECK (settlement_bank_code ~ '^[A-Z]{4}$');
