import type { Db } from '../../platform/db.ts';
import { rewardsId } from './ids.ts';
import * as repo from './rewards.repo.ts';

// The demo merchant's program, loaded by `npm start` in development: 1 point for every full
// ₹10 spent (rounded down), no pending period; a point is worth 25 paise at the till and lives
// a year.
export const DEMO_PROGRAM = {
  name: 'Demo Kirana Rewards',
  point_value_paise: 25,
  earn_points: 1,
  earn_per_paise: 1000,
  rounding: 'down' as const,
  pending_seconds: 0,
  validity_days: 365,
};

/** Creates the demo program for the merchant unless it is already in a program. Returns its id. */
export async function ensureDemoProgram(db: Db, merchant: { id: string; mcc: string }): Promise<string> {
  return db.tx(async (tx) => {
    const existing = await repo.programForMerchant(tx, merchant.id);
    if (existing) return existing.id;
    const now = new Date();
    const p = await repo.insertProgram(tx, {
      id: rewardsId('program'),
      owner_merchant_id: merchant.id,
      ...DEMO_PROGRAM,
      timezone: 'Asia/Kolkata',
      allow_negative_balance: false,
      budget_points: null,
      redeem_min_points: 1,
      redeem_max_basket_bp: 10_000,
      created_at: now,
    });
    await repo.addMember(tx, p.id, merchant.id, merchant.mcc, now);
    return p.id;
  });
}
