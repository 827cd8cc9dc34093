import type { BankOutcome, BankResult } from './types.ts';

// The one table from NPCI response codes to what they mean for a payment (see
// shared/domain/UPI.md). Every connector maps its bank's code through here, so a code
// means the same thing whichever bank sent it.

export interface ResponseCodeInfo {
  outcome: BankOutcome;
  meaning: string;
}

export const RESPONSE_CODES: Readonly<Record<string, ResponseCodeInfo>> = {
  '00': { outcome: 'success', meaning: 'success' },
  '01': { outcome: 'pending', meaning: 'pending: check status later' },
  ZA: { outcome: 'failed', meaning: 'declined by customer' },
  ZM: { outcome: 'failed', meaning: 'invalid UPI PIN' },
  Z9: { outcome: 'failed', meaning: 'insufficient funds' },
  Z8: { outcome: 'failed', meaning: 'per-transaction limit exceeded' },
  Z7: { outcome: 'failed', meaning: 'transaction frequency limit exceeded' },
  ZU: { outcome: 'failed', meaning: 'issuer limit exceeded' },
  U69: { outcome: 'expired', meaning: 'collect request expired' },
  U16: { outcome: 'failed', meaning: 'risk threshold exceeded' },
  // Final for this attempt; the customer may try again with a new payment.
  U28: { outcome: 'failed', meaning: 'remitter bank / PSP not available' },
  U30: { outcome: 'failed', meaning: 'debit failed' },
  U31: { outcome: 'failed', meaning: 'credit failed' },
  U48: { outcome: 'unknown', meaning: 'transaction id not present' },
  U67: { outcome: 'deemed', meaning: 'debit timeout' },
  U68: { outcome: 'deemed', meaning: 'credit timeout' },
  BT: { outcome: 'deemed', meaning: 'beneficiary unavailable (timeout)' },
  UT: { outcome: 'deemed', meaning: 'remitter unavailable (timeout)' },
  RB: { outcome: 'deemed', meaning: 'credit reversal timeout' },
  RR: { outcome: 'deemed', meaning: 'debit reversal timeout' },
  '21': { outcome: 'reversed', meaning: 'full reversal' },
  '32': { outcome: 'reversed', meaning: 'partial reversal' },
  // The reversal of a debit failed, so the debit stands: NPCI treats it as a success.
  '96': { outcome: 'success', meaning: 'reversal failure (deemed success)' },
};

/**
 * Outcome for an NPCI code. A code not in the table is treated as `deemed`, never as
 * failed: failing a payment the customer was in fact debited for is the worse mistake,
 * and a deemed payment goes to reconciliation, where a person or the settlement file decides.
 */
export function outcomeForCode(code: string): BankOutcome {
  return RESPONSE_CODES[normalizeCode(code)]?.outcome ?? 'deemed';
}

export function isKnownCode(code: string): boolean {
  return normalizeCode(code) in RESPONSE_CODES;
}

export function normalizeCode(code: string): string {
  return String(code).trim().toUpperCase();
}

/** Builds a BankResult from a bank's code and what else it told us. */
export function toBankResult(
  code: string,
  extra: { bankRef?: string; payerVpa?: string; message?: string } = {},
): BankResult {
  const responseCode = normalizeCode(code);
  const info = RESPONSE_CODES[responseCode];
  const result: BankResult = { outcome: info?.outcome ?? 'deemed', responseCode };
  if (extra.bankRef) result.bankRef = extra.bankRef;
  if (extra.payerVpa) result.payerVpa = extra.payerVpa;
  const message = extra.message ?? info?.meaning ?? 'unrecognised response code';
  if (message) result.message = message;
  return result;
}
