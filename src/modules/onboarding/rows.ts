import { merchantsBulk } from '../merchants/index.ts';
import { canonicalCustomer } from '../rewards/index.ts';
import type { AppError } from '../../platform/errors.ts';
import { FieldProblem, type ImportKind } from './mapping.ts';

// Validation of one mapped row, with the API's rules (the patterns come from the merchants and
// rewards modules, so an imported row is held to exactly what POST /v1/… would accept). Problems
// name the field and what is wrong, never the value: a rejected row's report carries no data.

const { ACCOUNT_NUMBER_RE, IFSC_RE, MCC_RE, BANK_CODE_RE, SERIAL_RE, LIMITS } = merchantsBulk;
const REF_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$/;
const PROGRAM_ID_RE = /^prg_[0-9a-f]{32}$/;

export interface RowRules {
  vpaPattern: RegExp;
  bankCodes: readonly string[];
  /** Turns a canonical customer ("vpa:…"/"phone:…") into its keyed hash, at once (rewards' customers.ts). */
  customerHash: (canonical: string) => Buffer;
  now: Date;
}

/** A merchant named by the row: by its external reference or by its Tillpoint id. */
export type MerchantRef = { ref: string } | { id: string };
export type StoreRef = { ref: string } | { id: string };

export interface MerchantRow {
  external_ref: string;
  name: string;
  vpa: string;
  mcc: string;
  acquiring_bank: string;
  settlement?: { account_number: string; ifsc: string };
  program_id?: string;
}
export interface StoreRow {
  external_ref: string;
  merchant: MerchantRef;
  name: string;
  city?: string;
}
export interface TerminalRow {
  external_ref: string;
  merchant: MerchantRef;
  store: StoreRef;
  label?: string;
  serial?: string;
}
export interface BalanceRow {
  external_ref: string;
  merchant: MerchantRef;
  customerHash: Buffer;
  points?: number;
  value_paise?: number;
  expires_at: Date | null;
}
/** A payment (or, with refund_of, a refund of one) from a legacy system's history. */
export interface PaymentHistoryRow {
  external_ref: string;
  merchant: MerchantRef;
  /** The payment's external reference this row refunds; absent for a payment. */
  refund_of?: string;
  terminal?: StoreRef;
  store_ref?: string;
  method: 'upi_qr' | 'upi_collect';
  amount: number;
  status: 'succeeded' | 'failed' | 'expired';
  created_at: Date;
  completed_at: Date | null;
  /** Lower-cased; sealed by the vault before the row is written, never stored in clear. */
  payer_vpa?: string;
  bank_ref?: string;
  bank_code?: string;
  /** Who the points went to: the keyed hash (customer_vpa, customer_phone, else the payer VPA). */
  customerHash?: Buffer;
  points_earned: number;
  points_redeemed: number;
}
export type ValidRow = MerchantRow | StoreRow | TerminalRow | BalanceRow | PaymentHistoryRow;

const BANK_REF_RE = /^[A-Za-z0-9]{1,35}$/;
const TIME_RE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,3})?)?(Z|[+-][0-9]{2}:[0-9]{2})$/;

/** A time in the past: ISO 8601 with its offset (a legacy datetime goes through the datetime_ist transform). */
function pastTime(f: Record<string, unknown>, name: string, now: Date, required: boolean): Date | null {
  const v = text(f, name, { required });
  if (v === undefined) return null;
  if (!TIME_RE.test(v)) throw new FieldProblem(name, 'must be an ISO 8601 time with its offset');
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new FieldProblem(name, 'is not a real time');
  const [y, m, day] = v.slice(0, 10).split('-').map(Number);
  const check = new Date(Date.UTC(y, m - 1, day));
  if (check.getUTCMonth() !== m - 1 || check.getUTCDate() !== day) throw new FieldProblem(name, 'is not a real time');
  if (d > now) throw new FieldProblem(name, 'is in the future (history is what already happened)');
  return d;
}

/** A whole number of points that may be zero (a payment that earned nothing). */
function points(f: Record<string, unknown>, name: string): number {
  const v = f[name];
  if (v === undefined || v === '' || v === 0 || v === '0') return 0;
  return whole(f, name, 'must be a whole number of points')!;
}

function text(
  f: Record<string, unknown>,
  name: string,
  o: { required?: boolean; max?: number; re?: RegExp; reProblem?: string } = {},
): string | undefined {
  const v = f[name];
  if (v === undefined || v === '') {
    if (o.required) throw new FieldProblem(name, 'is required');
    return undefined;
  }
  if (typeof v !== 'string')
    throw new FieldProblem(name, `must be text, not ${Array.isArray(v) ? 'a list' : typeof v}`);
  if (o.max !== undefined && v.length > o.max) throw new FieldProblem(name, `is longer than ${o.max} characters`);
  if (o.re && !o.re.test(v)) throw new FieldProblem(name, o.reProblem ?? 'has the wrong format');
  return v;
}

/** A whole number from a JSON number or a string of digits; refuses fractions and other text. */
function whole(f: Record<string, unknown>, name: string, fractionProblem: string): number | undefined {
  const v = f[name];
  if (v === undefined || v === '') return undefined;
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    if (/^-?[0-9]+\.[0-9]+$/.test(s)) {
      if (/^-?[0-9]+\.0+$/.test(s)) n = Number(s);
      else throw new FieldProblem(name, fractionProblem);
    } else if (!/^-?[0-9]+$/.test(s)) throw new FieldProblem(name, 'must be a whole number');
    else n = Number(s);
  } else throw new FieldProblem(name, `must be a number, not ${typeof v}`);
  if (!Number.isFinite(n)) throw new FieldProblem(name, 'must be a whole number');
  if (!Number.isInteger(n)) throw new FieldProblem(name, fractionProblem);
  if (!Number.isSafeInteger(n)) throw new FieldProblem(name, 'is too large');
  if (n <= 0) throw new FieldProblem(name, 'must be greater than zero');
  return n;
}

function merchantRef(f: Record<string, unknown>): MerchantRef {
  const ref = text(f, 'merchant_ref', { re: REF_RE, reProblem: 'must be 1-100 letters, digits or ._:/-' });
  const id = text(f, 'merchant_id', { re: /^mer_[0-9a-f]{32}$/, reProblem: 'must be a Tillpoint merchant id (mer_…)' });
  if ((ref === undefined) === (id === undefined))
    throw new FieldProblem('merchant_ref', 'give exactly one of merchant_ref and merchant_id');
  return ref !== undefined ? { ref } : { id: id! };
}

function date(f: Record<string, unknown>, name: string, now: Date): Date | null {
  const v = text(f, name);
  if (v === undefined) return null;
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,3})?)?(Z|[+-][0-9]{2}:[0-9]{2}))?$/.test(v))
    throw new FieldProblem(name, 'must be a date (YYYY-MM-DD) or an ISO 8601 time with its offset');
  // A date alone is the end of that day in India (IST), where the balances were kept.
  const d = new Date(v.length === 10 ? `${v}T23:59:59.999+05:30` : v);
  if (Number.isNaN(d.getTime())) throw new FieldProblem(name, 'is not a real date');
  if (v.length === 10) {
    const [y, m, day] = v.split('-').map(Number);
    const check = new Date(Date.UTC(y, m - 1, day));
    if (check.getUTCMonth() !== m - 1 || check.getUTCDate() !== day) throw new FieldProblem(name, 'is not a real date');
  }
  if (d <= now) throw new FieldProblem(name, 'has already passed (expired points are not imported)');
  return d;
}

/** Validates one mapped row of `kind`. Throws FieldProblem naming the first field that is wrong. */
export function validateRow(kind: ImportKind, f: Record<string, unknown>, rules: RowRules): ValidRow {
  const external_ref = text(f, 'external_ref', {
    required: true,
    re: REF_RE,
    reProblem: 'must be 1-100 letters, digits or ._:/- (starting with a letter or digit)',
  })!;
  switch (kind) {
    case 'merchants': {
      const name = text(f, 'name', { required: true, max: LIMITS.merchantName })!;
      const vpa = text(f, 'vpa', { required: true, max: LIMITS.vpa })!;
      if (vpa.length < 3 || !rules.vpaPattern.test(vpa)) throw new FieldProblem('vpa', 'is not a valid UPI address');
      const mcc = text(f, 'mcc', { required: true, re: MCC_RE, reProblem: 'must be 4 digits (ISO 18245)' })!;
      const bank = text(f, 'acquiring_bank', { required: true, re: BANK_CODE_RE })!;
      if (!rules.bankCodes.includes(bank))
        throw new FieldProblem('acquiring_bank', `must be one of ${rules.bankCodes.join(', ')}`);
      const account = text(f, 'settlement_account_number', {
        re: ACCOUNT_NUMBER_RE,
        reProblem: 'must be 9-18 digits',
      });
      const ifsc = text(f, 'settlement_ifsc', { re: IFSC_RE, reProblem: 'must be an IFSC such as HDFC0001234' });
      if ((account === undefined) !== (ifsc === undefined))
        throw new FieldProblem(
          account === undefined ? 'settlement_account_number' : 'settlement_ifsc',
          'a settlement account needs both the account number and the IFSC',
        );
      const program_id = text(f, 'program_id', { re: PROGRAM_ID_RE, reProblem: 'must be a program id (prg_…)' });
      return {
        external_ref,
        name,
        vpa: vpa.toLowerCase(),
        mcc,
        acquiring_bank: bank,
        settlement: account !== undefined ? { account_number: account, ifsc: ifsc! } : undefined,
        program_id,
      };
    }
    case 'stores':
      return {
        external_ref,
        merchant: merchantRef(f),
        name: text(f, 'name', { required: true, max: LIMITS.storeName })!,
        city: text(f, 'city', { max: LIMITS.city }),
      };
    case 'terminals': {
      const merchant = merchantRef(f);
      const sref = text(f, 'store_ref', { re: REF_RE, reProblem: 'must be 1-100 letters, digits or ._:/-' });
      const sid = text(f, 'store_id', { re: /^sto_[0-9a-f]{32}$/, reProblem: 'must be a Tillpoint store id (sto_…)' });
      if ((sref === undefined) === (sid === undefined))
        throw new FieldProblem('store_ref', 'give exactly one of store_ref and store_id');
      return {
        external_ref,
        merchant,
        store: sref !== undefined ? { ref: sref } : { id: sid! },
        label: text(f, 'label', { max: LIMITS.terminalLabel }),
        serial: text(f, 'serial', { re: SERIAL_RE, reProblem: 'must be 1-64 letters, digits, _ or -' }),
      };
    }
    case 'reward-balances': {
      const merchant = merchantRef(f);
      const vpa = text(f, 'vpa', { max: 255 });
      const phone = text(f, 'phone', { max: 20 });
      let canonical: string;
      try {
        canonical = canonicalCustomer({ vpa, phone }, rules.vpaPattern);
      } catch (e) {
        const code = (e as AppError).code;
        if (code === 'invalid_vpa') throw new FieldProblem('vpa', 'is not a valid UPI address');
        if (vpa === undefined && phone === undefined)
          throw new FieldProblem('vpa', 'give exactly one of vpa and phone');
        if (vpa !== undefined && phone !== undefined)
          throw new FieldProblem('vpa', 'give exactly one of vpa and phone');
        throw new FieldProblem('phone', 'must be a 10-digit Indian mobile number, optionally with +91');
      }
      const points = whole(f, 'points', 'must be a whole number of points');
      const value_paise = whole(f, 'value_paise', 'has a fraction of a paisa (amounts are whole paise)');
      if ((points === undefined) === (value_paise === undefined))
        throw new FieldProblem('points', 'give exactly one of points and value_paise');
      return {
        external_ref,
        merchant,
        customerHash: rules.customerHash(canonical),
        points,
        value_paise,
        expires_at: date(f, 'expires_at', rules.now),
      };
    }
    case 'payments':
      return paymentRow(external_ref, f, rules);
  }
}

function paymentRow(external_ref: string, f: Record<string, unknown>, rules: RowRules): PaymentHistoryRow {
  const merchant = merchantRef(f);
  const refund_of = text(f, 'refund_of', { re: REF_RE, reProblem: 'must be 1-100 letters, digits or ._:/-' });
  const amount = whole(f, 'amount_paise', 'has a fraction of a paisa (amounts are whole paise)');
  if (amount === undefined) throw new FieldProblem('amount_paise', 'is required');
  const status = text(f, 'status', { required: true })!.toLowerCase();
  const allowed = refund_of !== undefined ? ['succeeded', 'failed'] : ['succeeded', 'failed', 'expired'];
  if (!allowed.includes(status)) throw new FieldProblem('status', `must be one of ${allowed.join(', ')}`);
  const created_at = pastTime(f, 'created_at', rules.now, true)!;
  const completed_at = pastTime(f, 'completed_at', rules.now, false) ?? (status === 'succeeded' ? created_at : null);
  if (completed_at && completed_at < created_at) throw new FieldProblem('completed_at', 'is before created_at');
  const bank_ref = text(f, 'bank_ref', { re: BANK_REF_RE, reProblem: 'must be 1-35 letters or digits (the UPI RRN)' });
  const points_earned = points(f, 'points_earned');
  const points_redeemed = points(f, 'points_redeemed');
  if (refund_of !== undefined) {
    // A refund names its payment; where it was taken and who paid come from that payment.
    for (const k of ['terminal_ref', 'terminal_id', 'store_ref', 'payer_vpa', 'customer_vpa', 'customer_phone'])
      if (f[k] !== undefined && f[k] !== '') throw new FieldProblem(k, 'is for payments, not refunds');
    if (points_earned || points_redeemed)
      throw new FieldProblem('points_earned', 'is for payments (a payment carries its final points)');
    return {
      external_ref,
      merchant,
      refund_of,
      method: 'upi_qr',
      amount,
      status: status as 'succeeded' | 'failed',
      created_at,
      completed_at,
      bank_ref,
      points_earned: 0,
      points_redeemed: 0,
    };
  }
  const tref = text(f, 'terminal_ref', { re: REF_RE, reProblem: 'must be 1-100 letters, digits or ._:/-' });
  const tid = text(f, 'terminal_id', {
    re: /^trm_[0-9a-f]{32}$/,
    reProblem: 'must be a Tillpoint terminal id (trm_…)',
  });
  if ((tref === undefined) === (tid === undefined))
    throw new FieldProblem('terminal_ref', 'give exactly one of terminal_ref and terminal_id');
  const store_ref = text(f, 'store_ref', { re: REF_RE, reProblem: 'must be 1-100 letters, digits or ._:/-' });
  const method = (text(f, 'method') ?? 'upi_qr').toLowerCase();
  if (method !== 'upi_qr' && method !== 'upi_collect')
    throw new FieldProblem('method', 'must be upi_qr or upi_collect');
  const bank_code = text(f, 'bank_code', { re: BANK_CODE_RE });
  if (bank_code !== undefined && !rules.bankCodes.includes(bank_code))
    throw new FieldProblem('bank_code', `must be one of ${rules.bankCodes.join(', ')}`);
  let payer_vpa = text(f, 'payer_vpa', { max: LIMITS.vpa });
  if (payer_vpa !== undefined) {
    if (payer_vpa.length < 3 || !rules.vpaPattern.test(payer_vpa))
      throw new FieldProblem('payer_vpa', 'is not a valid UPI address');
    payer_vpa = payer_vpa.toLowerCase();
  }
  if (status !== 'succeeded' && (points_earned || points_redeemed))
    throw new FieldProblem('points_earned', 'only a succeeded payment earns or redeems points');
  let customerHash: Buffer | undefined;
  const cvpa = text(f, 'customer_vpa', { max: 255 });
  const cphone = text(f, 'customer_phone', { max: 20 });
  if (cvpa !== undefined || cphone !== undefined || payer_vpa !== undefined) {
    try {
      customerHash = rules.customerHash(
        canonicalCustomer(
          cvpa !== undefined || cphone !== undefined ? { vpa: cvpa, phone: cphone } : { vpa: payer_vpa },
          rules.vpaPattern,
        ),
      );
    } catch (e) {
      const code = (e as AppError).code;
      if (cvpa !== undefined && cphone !== undefined)
        throw new FieldProblem('customer_vpa', 'give at most one of customer_vpa and customer_phone');
      if (code === 'invalid_vpa') throw new FieldProblem('customer_vpa', 'is not a valid UPI address');
      throw new FieldProblem('customer_phone', 'must be a 10-digit Indian mobile number, optionally with +91');
    }
  }
  if ((points_earned || points_redeemed) && !customerHash)
    throw new FieldProblem('points_earned', 'points need a customer (customer_vpa, customer_phone or payer_vpa)');
  return {
    external_ref,
    merchant,
    terminal: tref !== undefined ? { ref: tref } : { id: tid! },
    store_ref,
    method,
    amount,
    status: status as 'succeeded' | 'failed' | 'expired',
    created_at,
    completed_at,
    payer_vpa,
    bank_ref,
    bank_code,
    customerHash,
    points_earned,
    points_redeemed,
  };
}
