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
export type ValidRow = MerchantRow | StoreRow | TerminalRow | BalanceRow;

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
  }
}
