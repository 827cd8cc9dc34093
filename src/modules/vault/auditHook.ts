import type { AuditWriter } from '../audit/index.ts';
import type { DetokenizeAuditHook } from './tokens.ts';

// Every detokenization attempt goes into the tamper-evident audit trail (PCI DSS 10.2.1.1:
// access to cardholder data), in the same transaction as vault.access_log. The reason the caller
// gave stays in vault.access_log only: it is free text, and audit details carry no free text.
export function detokenizeAuditHook(writer: Pick<AuditWriter, 'record'>): DetokenizeAuditHook {
  return {
    async recordDetokenize(tx, e) {
      await writer.record(tx, {
        action: 'vault.detokenize',
        outcome: e.outcome === 'allowed' ? 'success' : 'failure',
        actor: { type: e.actor.type, id: e.actor.id, merchant_id: e.actor.merchantId },
        resource: { type: 'token', id: e.token, merchant_id: e.actor.merchantId },
        origin: { ip: e.remoteAddr ?? null, request_id: e.requestId ?? null },
        details: { purpose: e.purpose, outcome: e.outcome },
      });
    },
  };
}
