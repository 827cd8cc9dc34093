import type { Logger } from 'pino';
import type { Db } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { LedgerService } from '../ledger/index.ts';
import type { BankConnector } from '../banks/index.ts';
import type { SettlementConfig } from './settlement.settings.ts';
import { createReversalsService, type ReversalRequests } from './reversals/reversals.service.ts';
import { createCyclesService, type BankFileTotals } from './cycles/cycles.service.ts';
import { createPayoutsService, type SettlementAccounts } from './payouts/payouts.service.ts';
import { getReversal } from './reversals/reversals.repo.ts';
import { reversalView } from './reversals/reversals.service.ts';
import { createCompensationCredits } from './reversals/compensation.service.ts';
import {
  COMPENSATION_PAYEE_VPA_FIELD,
  createCompensationRetries,
  type CompensationRetryApprovals,
} from './reversals/compensationRetry.service.ts';
import type { AuditWriter } from '../audit/index.ts';
import { DEFAULT_VPA_PATTERN } from '../../platform/mask.ts';
import { PAYER_VPA_FIELD, type PayerVpaCipher } from '../payments/index.ts';

// The settlement module assembled: reversals, cycles and payouts, and the worker jobs that drive
// them. The app wires it (src/app.ts) with recon's BankFileTotals; recon gets `requests`.

export interface SettlementDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  banks: { connector(code: string): BankConnector };
  clock: Clock;
  logger: Logger;
  config: SettlementConfig;
  /** Every configured bank: each gets a line per cycle. */
  bankCodes: readonly string[];
  /** How banks reach us: reversal callbacks go to `${publicUrl}/v1/settlement/banks/<code>/callbacks`. */
  publicUrl: string;
  /** Merchants' settlement accounts (the merchants module: decrypted by the vault, each read audited). */
  accounts: SettlementAccounts;
  /**
   * Opens the customer's VPA on a payment (the vault's cipher, as payments uses it), to pay
   * compensation to it. Without it compensation is booked but stays due (and says why).
   */
  payerVpa?: Pick<PayerVpaCipher, 'open'> & Partial<Pick<PayerVpaCipher, 'seal'>>;
  /**
   * An operator's retry of a refused compensation credit: the VPA rule (VPA_PATTERN), four eyes
   * (the approvals facility) and its threshold (REFUND_APPROVAL_THRESHOLD_PAISE, as for refunds).
   * Without `approvals`, a retry that needs a second operator is refused.
   */
  retries?: { vpaPattern: RegExp; approvals?: CompensationRetryApprovals; approvalThresholdPaise: number };
  /** Compensation paid or refused is an audit event (actor system:settlement). */
  audit?: AuditWriter;
  /** recon's port; without it every cycle waits for its files. Settable later (setBankFileTotals). */
  files?: BankFileTotals;
}

export function createSettlementService(deps: SettlementDeps) {
  const { db, clock, logger, config } = deps;
  let files = deps.files;
  const reversals = createReversalsService({
    db,
    ledger: deps.ledger,
    banks: deps.banks,
    clock,
    logger,
    callbackUrl: (code) => `${deps.publicUrl}/v1/settlement/banks/${code}/callbacks`,
    config: { rbi: config.rbi, checkAfterSeconds: config.reversalCheckAfterSeconds },
  });
  const compensation = createCompensationCredits({
    db,
    ledger: deps.ledger,
    banks: deps.banks,
    clock,
    logger,
    audit: deps.audit,
    config: { checkAfterSeconds: config.reversalCheckAfterSeconds },
    async payerVpa(row) {
      if (row.payer_vpa_ct && deps.payerVpa) return deps.payerVpa.open(PAYER_VPA_FIELD, row.id, row.payer_vpa_ct);
      return row.payer_vpa ?? undefined;
    },
    payeeVpa: deps.payerVpa
      ? (retryId, ct) => deps.payerVpa!.open(COMPENSATION_PAYEE_VPA_FIELD, retryId, ct)
      : undefined,
  });
  const seal = deps.payerVpa?.seal;
  const retries = createCompensationRetries({
    db,
    clock,
    logger,
    audit: deps.audit,
    vpaPattern: deps.retries?.vpaPattern ?? new RegExp(DEFAULT_VPA_PATTERN),
    approvals: deps.retries?.approvals,
    approvalThresholdPaise: deps.retries?.approvalThresholdPaise ?? 0,
    sealPayeeVpa: seal
      ? async (retryId, vpa, tx) => (await seal(COMPENSATION_PAYEE_VPA_FIELD, retryId, vpa, tx)).ciphertext
      : undefined,
  });
  const payouts = createPayoutsService({
    db,
    ledger: deps.ledger,
    clock,
    logger,
    accounts: deps.accounts,
    fileFormat: config.payoutFileFormat,
  });
  const cycles = createCyclesService({
    db,
    clock,
    logger,
    cutoffs: config.cycleCutoffs,
    bankCodes: deps.bankCodes,
    files: { forCycle: (bank, key) => (files ? files.forCycle(bank, key) : Promise.resolve(null)) },
    onClose: payouts.createForCycle,
  });

  return {
    reversals,
    compensation,
    /** An operator's retry of a refused compensation credit (compensationRetry.service.ts). */
    retries,
    cycles,
    payouts,
    /** The port recon calls (and the API's operator reversals): see ReversalRequests. */
    requests: reversals.requests as ReversalRequests,
    /** recon's file totals, when they are built after this service. */
    setBankFileTotals(f: BankFileTotals) {
      files = f;
    },
    /** An operator's reversal, in its own transaction. */
    async requestReversal(r: Parameters<ReversalRequests['request']>[1]) {
      const res = await db.tx((tx) => reversals.requests.request(tx, r));
      const row = (await getReversal(db, res.reversalId))!;
      return { reversal: reversalView(row, clock.now()), created: res.created };
    },
    /**
     * The worker's jobs. Each claims its rows (FOR UPDATE SKIP LOCKED, or an insert only one
     * replica wins), so any number of workers run them side by side; reversals go first, in
     * deadline order.
     */
    workerJobs(): { name: string; every?: number; run(): Promise<number> }[] {
      return [
        { name: 'reversals_schedule', run: () => reversals.scheduleFlagged() },
        { name: 'reversals', run: () => reversals.runReversals() },
        { name: 'reversal_checks', run: () => reversals.runReversalChecks() },
        // Days and cut-offs change at most once a minute: every 10 ticks (10 s by default) is plenty.
        { name: 'reversal_compensation', every: 10, run: () => reversals.runCompensation() },
        // Compensation is paid as soon as it is booked, without a claim (compensation.service.ts).
        { name: 'compensation_credits', run: () => compensation.runCredits() },
        { name: 'compensation_credit_checks', run: () => compensation.runCreditChecks() },
        { name: 'settlement_cycles', every: 10, run: () => cycles.runCycles() },
      ];
    },
  };
}

export type SettlementService = ReturnType<typeof createSettlementService>;
