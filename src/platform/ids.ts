import { v7 as uuidv7 } from 'uuid';

// Prefixed, time-sortable ids: the prefix says what a value is when it shows up in a log or a
// support ticket; UUIDv7 underneath keeps b-tree inserts append-only and cursors ordered.
export const ID_PREFIXES = {
  merchant: 'mer',
  store: 'sto',
  terminal: 'trm',
  payment: 'pay',
  refund: 'rfd',
  apiKey: 'key',
  journal: 'jrn',
  request: 'req',
  event: 'evt',
  operator: 'opr',
  session: 'ses',
  mfaChallenge: 'mfa',
  auditEvent: 'aud',
  approval: 'apr',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}_${uuidv7().replaceAll('-', '')}`;
}

const ID_RE = /^[a-z]{3}_[0-9a-f]{32}$/;

/** True when `id` looks like an id of `kind` (it may still not exist). */
export function isId(kind: IdKind, id: unknown): id is string {
  return typeof id === 'string' && ID_RE.test(id) && id.startsWith(ID_PREFIXES[kind] + '_');
}

/** A 35-character-max alphanumeric transaction reference, as NPCI requires for `tr`. */
export function txnRefFromPaymentId(paymentId: string): string {
  // 'pay_' + 32 hex -> 'TP' + 32 hex = 34 chars, alphanumeric only.
  return 'TP' + paymentId.slice(4).toUpperCase();
}

/** The payment id a txnRef was made from; undefined when it is not one of ours. */
export function paymentIdFromTxnRef(txnRef: string): string | undefined {
  return /^TP[0-9A-F]{32}$/.test(txnRef) ? 'pay_' + txnRef.slice(2).toLowerCase() : undefined;
}
