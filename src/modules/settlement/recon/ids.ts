import { v7 as uuidv7 } from 'uuid';

// Reconciliation's own ids, in the platform's shape (three-letter prefix, UUIDv7 hex) so cursors
// and logs treat them like any other, without adding to the platform's shared prefix table.
export const RECON_ID_PREFIXES = { file: 'rcf', run: 'rcr', exception: 'rce' } as const;

export function newReconId(kind: keyof typeof RECON_ID_PREFIXES): string {
  return `${RECON_ID_PREFIXES[kind]}_${uuidv7().replaceAll('-', '')}`;
}
