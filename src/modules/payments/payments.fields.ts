import type { Queryable } from '../../platform/db.ts';
import type { EncryptedField, FieldCipher } from '../vault/index.ts';
import type { PaymentRow } from './payments.repo.ts';

// The payer's VPA is personal data: the table keeps it only as ciphertext (payer_vpa_ct, AAD
// bound to the payment's id) and a blind index (payer_vpa_bidx) for lookups by VPA. The plaintext
// exists in memory only, on the row handed to hooks and views. The old plaintext column
// (payer_vpa) is emptied by the vault's background job and never written again.

export const PAYER_VPA_FIELD: EncryptedField = {
  table: 'payments.payments',
  idColumn: 'id',
  column: 'payer_vpa_ct',
  purpose: 'payer_vpa',
  blindIndex: { column: 'payer_vpa_bidx', normalize: (v) => v.toLowerCase() },
  legacyPlaintextColumn: 'payer_vpa',
};

/** What payments needs of the vault. */
export type PayerVpaCipher = Pick<FieldCipher, 'seal' | 'open' | 'lookupIndexes'>;

/** Columns to write for a payer VPA (always lower-cased, as payments stores VPAs). Pass the transaction when inside one. */
export async function sealPayerVpa(cipher: PayerVpaCipher, paymentId: string, vpa: string, q?: Queryable) {
  const s = await cipher.seal(PAYER_VPA_FIELD, paymentId, vpa.toLowerCase(), q);
  return { payer_vpa_ct: s.ciphertext, payer_vpa_bidx: s.blindIndex! };
}

/**
 * Puts the decrypted VPA on the row (in memory). Pass the transaction when inside one. A value
 * that does not decrypt throws: it was tampered with, and a wrong payer is worse than an error.
 */
export async function withPayerVpa<T extends PaymentRow | undefined>(
  cipher: PayerVpaCipher,
  row: T,
  q?: Queryable,
): Promise<T> {
  if (row?.payer_vpa_ct && row.payer_vpa == null)
    row.payer_vpa = await cipher.open(PAYER_VPA_FIELD, row.id, row.payer_vpa_ct, q);
  return row;
}
