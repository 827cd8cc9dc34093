import { formatRupees } from '../../platform/money.ts';

// The UPI deep link / dynamic QR string, per NPCI's linking specification: parameters without
// a value are left out (never "null"), values are percent-encoded, the amount has two decimals.

export interface UpiLinkParams {
  payeeVpa: string; // pa
  payeeName: string; // pn, 1-99
  mcc: string; // mc
  txnRef: string; // tr, alphanumeric, <= 35
  amountPaise: number; // am
  note?: string | null; // tn, 1-50
}

export function buildUpiUri(p: UpiLinkParams): string {
  if (!/^[A-Za-z0-9]{1,35}$/.test(p.txnRef)) throw new RangeError('tr must be 1-35 alphanumeric characters');
  const params: [string, string | undefined][] = [
    ['pa', p.payeeVpa],
    ['pn', p.payeeName.slice(0, 99)],
    ['mc', p.mcc],
    ['tr', p.txnRef],
    ['am', formatRupees(p.amountPaise)],
    ['cu', 'INR'],
    ['tn', p.note ? p.note.slice(0, 50) : undefined],
  ];
  const query = params
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`)
    .join('&');
  return `upi://pay?${query}`;
}
