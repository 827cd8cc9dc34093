// Money is integer paise. Nothing here ever touches a float for an amount: formatting goes
// through integer division so 1999 paise is always "19.99", never "19.990000000000002".

export const PAISE_PER_RUPEE = 100;

export function isValidPaise(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** Formats paise as rupees with exactly two decimals, as the UPI `am` parameter wants. */
export function formatRupees(paise: number): string {
  if (!Number.isSafeInteger(paise) || paise < 0) throw new RangeError('paise must be a non-negative integer');
  const rupees = Math.trunc(paise / PAISE_PER_RUPEE);
  const rest = paise % PAISE_PER_RUPEE;
  return `${rupees}.${String(rest).padStart(2, '0')}`;
}

/** Parses "149.00" / "149.5" / "149" into paise; rejects anything else. */
export function parseRupees(s: string): number {
  const m = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(s);
  if (!m) throw new RangeError(`not a rupee amount: ${s}`);
  return Number(m[1]) * PAISE_PER_RUPEE + Number((m[2] ?? '0').padEnd(2, '0'));
}
