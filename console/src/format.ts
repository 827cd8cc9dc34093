// Money is integer paise everywhere in Tillpoint; only the screen turns it into rupees.
const inr = new Intl.NumberFormat('en-IN', { style: 'currency', currency: 'INR', minimumFractionDigits: 2 });
export const rupees = (paise: number) => inr.format(paise / 100);

/** "149" or "149.5" or "149.50" → 14950 paise; undefined when it is not an amount. */
export function parseRupees(text: string): number | undefined {
  const m = /^\s*(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return undefined;
  const paise = Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
  return paise > 0 ? paise : undefined;
}

const dt = new Intl.DateTimeFormat('en-IN', { dateStyle: 'medium', timeStyle: 'medium' });
export const when = (iso: string | null | undefined) => (iso ? dt.format(new Date(iso)) : '—');
export const shortId = (id: string) => (id.length > 16 ? id.slice(0, 4) + '…' + id.slice(-8) : id);
