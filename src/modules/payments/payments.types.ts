import type { Logger } from 'pino';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Config } from '../../platform/config.ts';
import type { Metrics } from '../../platform/metrics.ts';
import type { Principal } from '../../platform/principal.ts';
import type { LedgerService } from '../ledger/index.ts';
import type { BankConnector } from '../banks/index.ts';
import type { PreparedAuditEvent } from '../audit/index.ts';
import type { NewPayment, PaymentHint, PaymentRow, RefundRow } from './payments.repo.ts';
import type { PayerVpaCipher } from './payments.fields.ts';
import type { PaymentRewardsInput } from './payments.schemas.ts';

/**
 * Extension points for other modules (rewards, audit, …). Each runs inside the transaction of
 * the event it names, so what it writes commits or rolls back with the payment itself.
 */
export interface PaymentHooks {
  onCreated?(tx: Queryable, payment: PaymentRow, input: CreatePaymentInput): Promise<void>;
  /**
   * Whether onCreated has anything to do for this input. A hook that has onCreated but not this
   * always gets the create transaction; when no hook has work, the payment, its history and its
   * audit records are written by one statement, with no BEGIN and COMMIT round trips.
   * A deliberate exception for throughput (docs/architecture.md, "Deliberate exceptions").
   */
  createNeedsTransaction?(input: CreatePaymentInput): boolean;
  /**
   * Audit records of the creation, written by the payment's own insert statement; `by`: who asked.
   * A deliberate exception for throughput (docs/architecture.md, "Deliberate exceptions").
   */
  createdAuditEvents?(payment: NewPayment, by: Principal): PreparedAuditEvent[];
  /**
   * In the transaction that posts the payment's ledger entry, just before the entry: the entry
   * locks the bank's clearing account, which every payment at that bank shares, so it is
   * written last and held only until the commit (bench/PROFILE.md).
   */
  onSucceeded?(tx: Queryable, payment: PaymentRow): Promise<void>;
  /**
   * The hook's part of a success completed in ONE statement (payments.repo.completeSucceeded: the
   * status change with its history and outbox event, the callback's nonce, this, the ledger
   * entry; no BEGIN/COMMIT). A boolean SQL expression over the payment's new row, named `row`
   * (row.id, row.merchant_id, …), evaluated after the status change and before the ledger entry
   * (the same lock order as onSucceeded). true: the hook's work for this success is done (by the
   * expression itself, or there is none); false: it needs onSucceeded, and the whole statement is
   * rolled back and the payment completed the long way, in a transaction. Constants go through
   * `param`. A hook with onSucceeded but without this (or succeededSetSql) always gets the long way. A deliberate
   * exception for throughput (docs/architecture.md, "Deliberate exceptions").
   */
  succeededSql?(row: string, param: (value: unknown) => string): string;
  /**
   * The hook's part of the one statement over ALL the payments it completes (one, or a batch:
   * payments.repo.completeSucceededMany), for work that needs what this process remembers of
   * each payment (`facts`, by payment id: PaymentHints, never trusted) or that must take its locks
   * for the whole batch in one order. A boolean SQL expression, evaluated once, after the status
   * changes and before the ledger entries; `rows` names a relation of the payments' new rows (all
   * columns of payments.payments). true: done for every payment; false: the whole statement is
   * rolled back (TPP01) and each payment is completed the long way. A hook may give this instead
   * of succeededSql. A deliberate exception for throughput (docs/architecture.md).
   */
  succeededSetSql?(rows: string, param: (value: unknown) => string, facts: ReadonlyMap<string, PaymentHint>): string;
  /**
   * A hint, never trusted: true when this process knows that a success at this merchant has
   * work only onSucceeded can do (rewards: the merchant is in a program), so the one statement
   * is not tried first (it would be rolled back). false or absent: try it.
   */
  succeededNeedsLongWay?(merchantId: string): boolean;
  /** A payment closed without money: failed or expired. */
  onClosedUnpaid?(tx: Queryable, payment: PaymentRow): Promise<void>;
  /** After a refund's ledger entry, in the same transaction. */
  onRefunded?(tx: Queryable, payment: PaymentRow, refund: RefundRow): Promise<void>;
  /** A refund was asked for (by whoever is calling), in the transaction that reserves it. */
  onRefundRequested?(tx: Queryable, payment: PaymentRow, refund: RefundRow): Promise<void>;
}

export interface PaymentsDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  banks: {
    route(acquiringBank: string, down?: ReadonlySet<string>): Promise<BankConnector>;
    connector(code: string): BankConnector;
  };
  config: Pick<Config, 'payments' | 'publicUrl'>;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  hooks?: PaymentHooks[];
  /** The vault's field cipher: the payer's VPA is stored only encrypted (payments.fields.ts). */
  payerVpa: PayerVpaCipher;
  /**
   * Four eyes for an operator's refund above payments.refundApprovalThresholdPaise: files the
   * request a second operator approves (identity's approvals, wired by the app). Without it such
   * a refund is refused (fail closed), never made on one person's say-so.
   */
  refundApprovals?: RefundApprovals;
}

export interface RefundApprovals {
  file(
    by: Principal,
    request: { payment_id: string; merchant_id: string; amount: number; reason: string | null },
  ): Promise<{ id: string }>;
}

/** An approved request being carried out: its claim is written in the refund's reservation transaction. */
export interface ApprovedRefund {
  approvalId: string;
  claim(tx: Queryable, outcome: Record<string, unknown>): Promise<void>;
}

export interface CreatePaymentInput {
  terminal_id: string;
  amount: number;
  currency: string;
  method: 'upi_qr' | 'upi_collect';
  payer_vpa?: string;
  note?: string;
  /** Reward points (handled by the rewards hooks): the customer to earn to, and points to redeem. */
  rewards?: PaymentRewardsInput;
}

export const addSeconds = (d: Date, s: number) => new Date(d.getTime() + s * 1000);
