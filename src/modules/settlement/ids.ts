import { v7 as uuidv7 } from 'uuid';

// Prefixed, time-sortable ids for settlement's own rows, in the platform's shape
// (src/platform/ids.ts: three letters, '_', 32 hex), so cursors and logs treat them alike.
const PREFIXES = { reversal: 'rvs', cycleException: 'sxc', payout: 'pyo', payoutBatch: 'pob' } as const;

export type SettlementIdKind = keyof typeof PREFIXES;

export const newSettlementId = (kind: SettlementIdKind) => `${PREFIXES[kind]}_${uuidv7().replaceAll('-', '')}`;

export const isSettlementId = (kind: SettlementIdKind, id: unknown): id is string =>
  typeof id === 'string' && new RegExp(`^${PREFIXES[kind]}_[0-9a-f]{32}$`).test(id);
