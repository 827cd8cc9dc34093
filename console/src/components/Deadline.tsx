import { when } from '../format.ts';

// Time against a deadline: how long something has waited and how long is left (or how late it
// is). Overdue is said in words as well as in colour, so it reads the same to a screen reader.

/** 93_784 s → "1 d 2 h"; 2_700 → "45 min"; 20 → "under a minute". */
export function duration(seconds: number): string {
  const s = Math.abs(seconds);
  if (s < 60) return 'under a minute';
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  if (d > 0) return h ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m ? `${h} h ${m} min` : `${h} h`;
  return `${m} min`;
}

export function Deadline({
  at,
  secondsLeft,
  done,
}: {
  /** The first instant past the deadline (ISO). */
  at: string;
  /** Seconds from now to the deadline; negative once past it. */
  secondsLeft: number;
  /** Finished (resolved, succeeded): say whether it was in time rather than what is left. */
  done?: { at: string | null; inTime: boolean };
}) {
  if (done)
    return (
      <span title={`Deadline ${when(at)}`} className={done.inTime ? '' : 'late'}>
        {done.inTime ? 'in time' : 'done late'}
      </span>
    );
  const overdue = secondsLeft <= 0;
  return (
    <span title={`Deadline ${when(at)}`} className={overdue ? 'late' : secondsLeft < 48 * 3600 ? 'soon' : ''}>
      {overdue ? `overdue by ${duration(secondsLeft)}` : `${duration(secondsLeft)} left`}
    </span>
  );
}
