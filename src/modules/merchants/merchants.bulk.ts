import type { FieldCipher } from '../vault/index.ts';
import type { SealedSettlement } from './merchants.repo.ts';
import { SETTLEMENT_ACCOUNT_FIELD, SETTLEMENT_IFSC_FIELD } from './merchants.fields.ts';

// What the bulk import (src/modules/onboarding) shares with the API's create path, so a merchant
// imported from a file is stored exactly as one created through POST /v1/merchants: the same
// field checks and the same encryption of the settlement account (ciphertext bound to the row).

export { ACCOUNT_NUMBER_RE, IFSC_RE } from './merchants.fields.ts';
/** The API's MCC and acquiring-bank patterns (merchants.schemas.ts). */
export const MCC_RE = /^[0-9]{4}$/;
export const BANK_CODE_RE = /^[A-Z0-9_]{2,20}$/;
export const SERIAL_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** Field lengths as the API's schemas have them. */
export const LIMITS = { merchantName: 99, vpa: 255, storeName: 120, city: 80, terminalLabel: 80 } as const;

/** Encrypts a settlement account for this merchant's row, as createMerchant does. */
export async function sealSettlement(
  fields: Pick<FieldCipher, 'seal'>,
  merchantId: string,
  s: { account_number: string; ifsc: string },
): Promise<SealedSettlement> {
  return {
    account_ct: (await fields.seal(SETTLEMENT_ACCOUNT_FIELD, merchantId, s.account_number)).ciphertext,
    ifsc_ct: (await fields.seal(SETTLEMENT_IFSC_FIELD, merchantId, s.ifsc)).ciphertext,
    last4: s.account_number.slice(-4),
    bank_code: s.ifsc.slice(0, 4),
  };
}

export {
  insertMerchantsBatch,
  insertStoresBatch,
  insertTerminalsBatch,
  takenVpas,
  takenSerials,
  merchantsByIds,
  storesByIds,
  fleetCounts,
  type MerchantBatchRow,
  type SealedSettlement,
} from './merchants.repo.ts';
