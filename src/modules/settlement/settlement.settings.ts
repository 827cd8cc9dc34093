import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings, type Env } from '../../platform/settings.ts';
import { RBI_UPI_MERCHANT, type RbiClock } from './reversals/deadline.ts';

// Settlement's settings, from the environment, checked at start like the platform's (a bad one
// stops the process with a message naming it).
//
//   SETTLEMENT_CYCLE_CUTOFFS      cut-off times of the day's settlement cycles, HH:MM in IST,
//                                 comma-separated, in order. Cycle n of day D ends at D's n-th
//                                 cut-off and begins at the one before (cycle 1 at the last cut-off
//                                 of the day before). NPCI runs several cycles a day and publishes
//                                 their timetable to member banks; it changes, so it is configuration.
//                                 The default is a placeholder of ten cycles: set your bank's.
//   REVERSAL_TAT_DAYS             days after T for a reversal (RBI/2019-20/67: T+5 for UPI merchant payments)
//   REVERSAL_COMPENSATION_PAISE   compensation per day of delay (₹100 = 10000)
//   REVERSAL_CHECK_AFTER_SECONDS  status check after an uncertain or pending answer (300)
//   PAYOUT_FILE_FORMAT            the bulk-transfer mapping payout batches are written in (payouts/formats.ts)

export interface SettlementConfig {
  /** Minutes after 00:00 IST of each cut-off, ascending. */
  cycleCutoffs: number[];
  rbi: RbiClock;
  reversalCheckAfterSeconds: number;
  payoutFileFormat: string;
}

export const DEFAULT_CYCLE_CUTOFFS = '01:00,03:00,05:00,07:00,09:00,11:00,13:00,15:00,17:00,21:00';

export function parseCutoffs(raw: string, setting = 'SETTLEMENT_CYCLE_CUTOFFS'): number[] {
  const out: number[] = [];
  for (const part of raw.split(',').map((s) => s.trim())) {
    const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(part);
    if (!m) throw new ConfigError(setting, `"${part}" is not a time HH:MM`);
    const min = Number(m[1]) * 60 + Number(m[2]);
    if (out.length > 0 && min <= out[out.length - 1])
      throw new ConfigError(setting, 'cut-offs must be in ascending order, each once');
    out.push(min);
  }
  if (out.length === 0 || out.length > 24) throw new ConfigError(setting, 'needs 1 to 24 cut-offs');
  return out;
}

function int(env: Record<string, string | undefined>, name: string, def: number, min: number, max: number) {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new ConfigError(name, `must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

export function loadSettlementConfig(env: Record<string, string | undefined> = process.env): SettlementConfig {
  return {
    cycleCutoffs: parseCutoffs(env.SETTLEMENT_CYCLE_CUTOFFS || DEFAULT_CYCLE_CUTOFFS),
    rbi: {
      tatDays: int(env, 'REVERSAL_TAT_DAYS', RBI_UPI_MERCHANT.tatDays, 0, 30),
      compensationPaisePerDay: int(
        env,
        'REVERSAL_COMPENSATION_PAISE',
        RBI_UPI_MERCHANT.compensationPaisePerDay,
        0,
        10_000_000,
      ),
    },
    reversalCheckAfterSeconds: int(env, 'REVERSAL_CHECK_AFTER_SECONDS', 300, 1, 86_400),
    payoutFileFormat: env.PAYOUT_FILE_FORMAT || 'generic_neft_csv',
  };
}

interface SettlementSection {
  settlement: SettlementConfig;
}
declare module '../../platform/config.ts' {
  interface Config extends SettlementSection {}
}

export const settlementSettings = defineSettings({
  title: 'Settlement',
  source: 'src/modules/settlement/settlement.settings.ts',
  schema: Type.Object({
    SETTLEMENT_CYCLE_CUTOFFS: Type.String({
      default: DEFAULT_CYCLE_CUTOFFS,
      description:
        "Cut-off times of the day's settlement cycles, HH:MM in IST, ascending. Cycle n of day D ends at D's n-th cut-off. NPCI publishes its timetable to member banks: set your bank's (the default is a placeholder).",
    }),
    REVERSAL_TAT_DAYS: Type.Integer({
      default: RBI_UPI_MERCHANT.tatDays,
      minimum: 0,
      maximum: 30,
      description: 'Days after T by which a reversal must be credited (RBI/2019-20/67: T+5 for UPI merchant payments).',
    }),
    REVERSAL_COMPENSATION_PAISE: Type.Integer({
      default: RBI_UPI_MERCHANT.compensationPaisePerDay,
      minimum: 0,
      maximum: 10_000_000,
      description: 'Compensation per day of delay past the deadline, in paise (RBI: ₹100 a day).',
    }),
    REVERSAL_CHECK_AFTER_SECONDS: Type.Integer({
      default: 300,
      minimum: 1,
      maximum: 86_400,
      description: 'Status check of a reversal the bank left uncertain or pending, after this long.',
    }),
    PAYOUT_FILE_FORMAT: Type.String({
      default: 'generic_neft_csv',
      description:
        'The bulk-transfer mapping payout batches are written in (src/modules/settlement/payouts/formats.ts).',
    }),
  }),
  load: (env: Env): SettlementSection => ({ settlement: loadSettlementConfig(env) }),
});
