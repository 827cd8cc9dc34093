import { addDays, istDate, istMidnight } from '../calendar.ts';

// Settlement cycle keys, `YYYY-MM-DD-C<n>` in IST (the form agreed with recon/, which names the
// cycle a bank file belongs to the same way). Cycle n of day D is (cut-off n−1, cut-off n]: it
// ends at D's n-th cut-off, inclusive, and begins just after the cut-off before it (for cycle 1,
// the last cut-off of D−1). An instant after the day's last cut-off belongs to C1 of the next day.

export interface CycleWindow {
  key: string;
  date: string;
  n: number;
  /** Exclusive. */
  startsAt: Date;
  /** Inclusive: the cut-off. */
  endsAt: Date;
}

const KEY_RE = /^(\d{4}-\d{2}-\d{2})-C(\d{1,2})$/;

export function parseCycleKey(key: string, cutoffs: readonly number[]): CycleWindow | undefined {
  const m = KEY_RE.exec(key);
  if (!m) return undefined;
  const [, date, nRaw] = m;
  const n = Number(nRaw);
  if (n < 1 || n > cutoffs.length) return undefined;
  if (
    Number.isNaN(Date.parse(`${date}T00:00:00Z`)) ||
    new Date(`${date}T00:00:00Z`).toISOString().slice(0, 10) !== date
  )
    return undefined;
  return window(date, n, cutoffs);
}

function window(date: string, n: number, cutoffs: readonly number[]): CycleWindow {
  const at = (d: string, minutes: number) => new Date(istMidnight(d).getTime() + minutes * 60_000);
  const endsAt = at(date, cutoffs[n - 1]);
  const startsAt = n > 1 ? at(date, cutoffs[n - 2]) : at(addDays(date, -1), cutoffs[cutoffs.length - 1]);
  return { key: `${date}-C${n}`, date, n, startsAt, endsAt };
}

/** The cycle an instant belongs to. */
export function cycleOf(at: Date, cutoffs: readonly number[]): CycleWindow {
  const date = istDate(at);
  for (let n = 1; n <= cutoffs.length; n++) {
    const w = window(date, n, cutoffs);
    if (at.getTime() <= w.endsAt.getTime()) return w;
  }
  return window(addDays(date, 1), 1, cutoffs);
}

/** The cycle after `w`. */
export function nextCycle(w: CycleWindow, cutoffs: readonly number[]): CycleWindow {
  return w.n < cutoffs.length ? window(w.date, w.n + 1, cutoffs) : window(addDays(w.date, 1), 1, cutoffs);
}

/** The last cycle that has ended by `now`. */
export function lastEndedCycle(now: Date, cutoffs: readonly number[]): CycleWindow {
  const current = cycleOf(now, cutoffs);
  if (current.endsAt.getTime() === now.getTime()) return current;
  // The one before the current: the cycle containing the instant just after the previous cut-off.
  return cycleOf(new Date(current.startsAt.getTime()), cutoffs);
}
