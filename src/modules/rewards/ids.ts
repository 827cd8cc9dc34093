import { v7 as uuidv7 } from 'uuid';

// Prefixed, time-sortable ids for the rewards module, in the same form as platform/ids.ts
// ("<3 letters>_<32 hex>", UUIDv7 underneath), so the shared cursor pagination works on them
// and lot ids sort oldest first.
export const REWARDS_ID_PREFIXES = {
  program: 'prg',
  rule: 'rul',
  customer: 'cus',
  lot: 'lot',
  redemption: 'rdm',
  adjustment: 'adj',
  movement: 'mov',
} as const;

export type RewardsIdKind = keyof typeof REWARDS_ID_PREFIXES;

export function rewardsId(kind: RewardsIdKind): string {
  return `${REWARDS_ID_PREFIXES[kind]}_${uuidv7().replaceAll('-', '')}`;
}

export function isRewardsId(kind: RewardsIdKind, id: unknown): id is string {
  return typeof id === 'string' && /^[a-z]{3}_[0-9a-f]{32}$/.test(id) && id.startsWith(REWARDS_ID_PREFIXES[kind] + '_');
}
