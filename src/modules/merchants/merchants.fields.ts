import type { EncryptedField } from '../vault/index.ts';

// Where a merchant is paid out. Account number and IFSC are encrypted (AAD bound to the merchant
// id); screens show the last 4 digits of the account and the bank code (first 4 letters of the
// IFSC), kept in their own columns. Only the settlement process reads the full values, through
// getSettlementAccount.

export const SETTLEMENT_ACCOUNT_FIELD: EncryptedField = {
  table: 'merchants.merchants',
  idColumn: 'id',
  column: 'settlement_account_ct',
  purpose: 'merchant_bank',
};
export const SETTLEMENT_IFSC_FIELD: EncryptedField = {
  table: 'merchants.merchants',
  idColumn: 'id',
  column: 'settlement_ifsc_ct',
  purpose: 'merchant_bank',
};
export const MERCHANT_ENCRYPTED_FIELDS = [SETTLEMENT_ACCOUNT_FIELD, SETTLEMENT_IFSC_FIELD];

export const ACCOUNT_NUMBER_RE = /^[0-9]{9,18}$/;
/** IFSC: 4 letters (bank), a zero, 6 letters or digits (branch). */
export const IFSC_RE = /^[A-Z]{4}0[A-Z0-9]{6}$/;
