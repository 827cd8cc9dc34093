import {
  constants,
  createCipheriv,
  createDecipheriv,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

// The pspbank wire format: the shape Indian PSP banks' merchant APIs commonly take (the bank
// names and codes here are our own; the construction is the usual one). Shared by the pspbank
// connector and the bank simulator, so the two cannot drift apart. Documented in
// docs/bank-simulator.md ("The pspbank format").
//
// Every message, both ways, is an envelope:
//
//   requestId      32 hex characters, unique per message (the replay key)
//   service        what it is: QrIntent, CollectPay, TxnStatus, Refund, RefundStatus, PayToVa,
//                  PayToVaStatus, Callback
//   timestamp      unix seconds when it was sealed (freshness)
//   encryptedKey   base64 RSA-OAEP-SHA256(recipient's public key, a fresh 32-byte session key)
//   iv             base64, 12 bytes
//   encryptedData  base64 AES-256-GCM(session key, iv, JSON payload) followed by its 16-byte tag;
//                  additional data: `${requestId}|${service}|${timestamp}`
//   signature      base64 RSA-SHA256 (PKCS#1 v1.5) by the sender's private key over
//                  `${requestId}|${service}|${timestamp}|${encryptedKey}|${iv}|${encryptedData}`
//
// Encrypt-then-sign: the receiver checks the signature before it spends a private-key operation
// on the session key. Requests and answers are JSON envelopes; callbacks are the same fields
// form-encoded (application/x-www-form-urlencoded), as many banks post them.
//
// All primitives are node:crypto's; nothing here is a cipher of its own.

export const PSP_PATHS = {
  qrIntent: '/v1/upi/qr-intent',
  collect: '/v1/upi/collect-pay',
  txnStatus: '/v1/upi/transaction-status',
  refund: '/v1/upi/refund',
  refundStatus: '/v1/upi/refund-status',
  payToVa: '/v1/upi/pay-to-va',
  payToVaStatus: '/v1/upi/pay-to-va-status',
} as const;

export type PspService =
  | 'QrIntent'
  | 'CollectPay'
  | 'TxnStatus'
  | 'Refund'
  | 'RefundStatus'
  | 'PayToVa'
  | 'PayToVaStatus'
  | 'Callback';
const SERVICES = new Set<string>([
  'QrIntent',
  'CollectPay',
  'TxnStatus',
  'Refund',
  'RefundStatus',
  'PayToVa',
  'PayToVaStatus',
  'Callback',
]);

export interface Envelope {
  requestId: string;
  service: PspService;
  timestamp: string;
  encryptedKey: string;
  iv: string;
  encryptedData: string;
  signature: string;
}

const FIELDS = ['requestId', 'service', 'timestamp', 'encryptedKey', 'iv', 'encryptedData', 'signature'] as const;
const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

// --- plaintext payloads (inside encryptedData) ------------------------------------------------

/** QrIntent and CollectPay requests (CollectPay adds payerVa). */
export interface PspTxnRequest {
  merchantId: string;
  merchantTranId: string;
  /** Rupees with two decimals, "149.00". */
  amount: string;
  payeeVa: string;
  payeeName: string;
  mcc: string;
  note?: string;
  /** How long the payer has, in whole minutes (these banks take minutes, not a timestamp). */
  validityMinutes: number;
  callbackUrl: string;
  payerVa?: string;
}

export interface PspRefundRequest {
  merchantId: string;
  /** The refund's own reference. */
  merchantTranId: string;
  originalMerchantTranId: string;
  refundAmount: string;
  note?: string;
  callbackUrl: string;
}

/**
 * PayToVa: a push credit from the merchant's account to a customer's VA (not against a debit).
 * Answered like a Refund (PspTxnResponse); its status (PayToVaStatus, a PspStatusRequest) like a
 * RefundStatus. Idempotent on merchantTranId.
 */
export interface PspPayToVaRequest {
  merchantId: string;
  /** The credit's own reference. */
  merchantTranId: string;
  payeeVa: string;
  amount: string;
  remarks: string;
  relatedMerchantTranId?: string;
}

export interface PspStatusRequest {
  merchantId: string;
  merchantTranId: string;
}

/** Answer to QrIntent, CollectPay and Refund: `response` is the bank's own code (codes.ts). */
export interface PspTxnResponse {
  success: 'true' | 'false';
  response: string;
  message?: string;
  merchantId: string;
  merchantTranId: string;
  BankRRN?: string;
  payerVa?: string;
}

/**
 * Answer to TxnStatus and RefundStatus. Unlike the other answers (and the callback), `response`
 * is the code of the *query* ("0": found, "5004": no such transaction) and the transaction's own
 * state is `status`, with the bank's code for it in `txnResponseCode` when it has one.
 */
export interface PspStatusResponse {
  success: 'true' | 'false';
  response: string;
  message?: string;
  merchantId: string;
  merchantTranId: string;
  status?: 'SUCCESS' | 'FAILURE' | 'PENDING' | 'EXPIRED' | 'DEEMED';
  txnResponseCode?: string;
  OriginalBankRRN?: string;
  payerVa?: string;
  amount?: string;
}

/** The callback's payload: the bank's code in `ResponseCode`, and a status word beside it. */
export interface PspCallback {
  merchantId: string;
  type: 'PAYMENT' | 'REFUND';
  merchantTranId: string;
  originalMerchantTranId?: string;
  TxnStatus: 'SUCCESS' | 'FAILURE' | 'PENDING';
  ResponseCode: string;
  PayerVA?: string;
  PayerAmount: string;
  BankRRN?: string;
  message?: string;
}

// --- sealing and opening ------------------------------------------------------------------------

const signedText = (e: Omit<Envelope, 'signature'>) =>
  `${e.requestId}|${e.service}|${e.timestamp}|${e.encryptedKey}|${e.iv}|${e.encryptedData}`;
const aad = (requestId: string, service: string, timestamp: string) =>
  Buffer.from(`${requestId}|${service}|${timestamp}`);

export function seal(
  payload: unknown,
  o: { service: PspService; recipient: KeyObject; signer: KeyObject; now: Date; requestId?: string },
): Envelope {
  const requestId = o.requestId ?? randomBytes(16).toString('hex');
  const timestamp = String(Math.floor(o.now.getTime() / 1000));
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(requestId, o.service, timestamp));
  const data = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final(), cipher.getAuthTag()]);
  const unsigned = {
    requestId,
    service: o.service,
    timestamp,
    encryptedKey: publicEncrypt(
      { key: o.recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      key,
    ).toString('base64'),
    iv: iv.toString('base64'),
    encryptedData: data.toString('base64'),
  };
  return { ...unsigned, signature: sign('sha256', Buffer.from(signedText(unsigned)), o.signer).toString('base64') };
}

export type Opened =
  | { ok: true; payload: unknown; requestId: string; service: PspService; sentAt: Date }
  | { ok: false; reason: 'malformed_body' | 'bad_signature' };

/** Reads an envelope's fields from a parsed JSON body or form; undefined when any is missing or odd. */
export function envelopeFields(o: unknown): Envelope | undefined {
  if (!o || typeof o !== 'object' || Array.isArray(o)) return undefined;
  const r = o as Record<string, unknown>;
  for (const k of FIELDS) if (typeof r[k] !== 'string' || r[k] === '') return undefined;
  const e = r as unknown as Envelope;
  if (!/^[0-9a-f]{32}$/.test(e.requestId) || !SERVICES.has(e.service) || !/^\d{1,12}$/.test(e.timestamp))
    return undefined;
  if (![e.encryptedKey, e.iv, e.encryptedData, e.signature].every((v) => v.length <= 1_000_000 && B64_RE.test(v)))
    return undefined;
  return e;
}

/**
 * Verifies the sender's signature (any of `senders`: the current key, then the previous one during
 * a rotation), then decrypts. A bad signature is `bad_signature`; anything unreadable, including a
 * correctly signed body that does not decrypt, is `malformed_body`.
 */
export function open(e: Envelope, o: { recipient: KeyObject; senders: KeyObject[] }): Opened {
  const text = Buffer.from(signedText(e));
  const sig = Buffer.from(e.signature, 'base64');
  let verified = false;
  for (const k of o.senders) {
    try {
      if (verify('sha256', text, k, sig)) verified = true;
    } catch {
      // a signature of the wrong length for this key: not this one
    }
  }
  if (!verified) return { ok: false, reason: 'bad_signature' };
  try {
    const key = privateDecrypt(
      { key: o.recipient, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      Buffer.from(e.encryptedKey, 'base64'),
    );
    const data = Buffer.from(e.encryptedData, 'base64');
    if (key.length !== 32 || data.length < 17) return { ok: false, reason: 'malformed_body' };
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(e.iv, 'base64'));
    decipher.setAAD(aad(e.requestId, e.service, e.timestamp));
    decipher.setAuthTag(data.subarray(data.length - 16));
    const plain = Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]);
    return {
      ok: true,
      payload: JSON.parse(plain.toString('utf8')),
      requestId: e.requestId,
      service: e.service,
      sentAt: new Date(Number(e.timestamp) * 1000),
    };
  } catch {
    return { ok: false, reason: 'malformed_body' };
  }
}

/** A form body as an envelope; a field given twice is ambiguous and makes it unreadable. */
export function envelopeFromForm(body: string): Envelope | undefined {
  const params = new URLSearchParams(body);
  const o: Record<string, string> = {};
  for (const [k, v] of params) {
    if (Object.hasOwn(o, k)) return undefined;
    o[k] = v;
  }
  return envelopeFields(o);
}

export function envelopeToForm(e: Envelope): string {
  return new URLSearchParams(FIELDS.map((k) => [k, e[k]])).toString();
}
