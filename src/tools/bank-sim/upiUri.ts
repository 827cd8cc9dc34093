import { parseRupees } from '../../platform/money.ts';

// Reads a `upi://pay?...` string the way a payer's UPI app does, as far as the simulator
// needs: who is paid (pa), for which reference (tr), how much (am).

export interface ParsedUpiUri {
  pa: string;
  pn?: string;
  tr?: string;
  /** Amount in paise; undefined when the QR leaves the amount to the payer. */
  amountPaise?: number;
  cu?: string;
  params: Record<string, string>;
}

export function parseUpiUri(uri: string): ParsedUpiUri {
  const m = /^upi:\/\/pay\?(.*)$/i.exec(uri.trim());
  if (!m) throw new Error('not a upi://pay URI');
  const params: Record<string, string> = {};
  // Values are percent-encoded; a literal "+" is kept as "+" (UPI apps do not read it as a space).
  for (const part of m[1].split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(k);
      value = decodeURIComponent(v);
    } catch {
      throw new Error(`parameter "${k}" is not validly percent-encoded`);
    }
    if (key in params) throw new Error(`parameter "${key}" appears twice`);
    params[key] = value;
  }
  if (!params.pa) throw new Error('pa (payee VPA) is missing');
  let amountPaise: number | undefined;
  if (params.am !== undefined && params.am !== '') {
    try {
      amountPaise = parseRupees(params.am);
    } catch {
      throw new Error('am is not a rupee amount');
    }
  }
  return { pa: params.pa, pn: params.pn, tr: params.tr, amountPaise, cu: params.cu, params };
}
