import { RESPONSE_CODES, toBankResult } from '../../responseCodes.ts';
import type { BankResult } from '../../types.ts';

// pspbank's own response codes and what each is in NPCI's terms. The NPCI code then decides the
// outcome through the one table (responseCodes.ts), so a code means the same thing whichever
// bank sent it. A code missing here is `deemed` (reconcile), never failed: failing a payment
// the customer was debited for is the worse mistake.

export const PSP_CODES: Readonly<Record<string, { npci: string; meaning: string }>> = {
  '0': { npci: '00', meaning: 'transaction successful' },
  '92': { npci: '01', meaning: 'request initiated; awaiting the payer' },
  '1': { npci: 'U30', meaning: 'transaction failed' },
  DA: { npci: 'ZA', meaning: 'declined by payer' },
  DF: { npci: 'Z9', meaning: 'insufficient funds' },
  DP: { npci: 'ZM', meaning: 'incorrect UPI PIN' },
  DL: { npci: 'Z8', meaning: 'per-transaction limit exceeded' },
  EX: { npci: 'U69', meaning: 'collect request expired' },
  DT: { npci: 'U67', meaning: 'debit timed out at the switch (deemed)' },
  BT: { npci: 'BT', meaning: 'beneficiary bank timed out (deemed)' },
  '5004': { npci: 'U48', meaning: 'no such transaction' },
  CF: { npci: 'U31', meaning: 'credit to the beneficiary failed (PayToVa)' },
};

/** The other way, for the simulator: the pspbank code it answers with for an NPCI code. */
export const NPCI_TO_PSP: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(PSP_CODES).map(([psp, { npci }]) => [npci, psp]),
);

const CODE_RE = /^[A-Za-z0-9]{1,8}$/;

/** The result for one of the bank's codes; a code it does not know is deemed (reconcile). */
export function pspResult(code: string, extra: { bankRef?: string; payerVpa?: string; message?: string }): BankResult {
  const c = String(code).trim().toUpperCase();
  const known = Object.hasOwn(PSP_CODES, c) ? PSP_CODES[c] : undefined;
  if (known && Object.hasOwn(RESPONSE_CODES, known.npci)) {
    return toBankResult(known.npci, { ...extra, message: extra.message ?? known.meaning });
  }
  const result: BankResult = {
    outcome: 'deemed',
    // Kept as the bank sent it (prefixed, so it is never read as an NPCI code), for reconciliation.
    responseCode: CODE_RE.test(c) ? `PSP:${c}` : 'PSP:?',
    message: 'unrecognised pspbank response code',
  };
  if (extra.bankRef) result.bankRef = extra.bankRef;
  if (extra.payerVpa) result.payerVpa = extra.payerVpa;
  return result;
}

/**
 * A status query's answer. `response` is the query's code; the transaction's state is `status`
 * (with `txnResponseCode` when the bank gives one). A status word it does not know is deemed.
 */
export function pspStatusResult(
  r: { response: string; status?: string; txnResponseCode?: string },
  extra: { bankRef?: string; payerVpa?: string; message?: string },
): BankResult {
  if (r.response === '5004') return pspResult('5004', extra);
  if (r.response !== '0') return pspResult(r.response, extra);
  switch (r.status) {
    case 'SUCCESS':
      return pspResult('0', extra);
    case 'PENDING':
      return pspResult('92', extra);
    case 'EXPIRED':
      return pspResult('EX', extra);
    case 'DEEMED':
      return pspResult(r.txnResponseCode ?? 'DT', extra);
    case 'FAILURE': {
      // A failure the bank names: its code decides (and an odd one is deemed, as ever); a bare
      // FAILURE is the bank's generic "transaction failed".
      const res = pspResult(r.txnResponseCode ?? '1', extra);
      return res.outcome === 'success' || res.outcome === 'pending' ? pspResult('?', extra) : res;
    }
    default:
      return pspResult(`?${r.status ?? ''}`, extra);
  }
}
