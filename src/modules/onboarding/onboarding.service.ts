import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { Actor, AuditWriter } from '../audit/index.ts';
import type { LedgerService } from '../ledger/index.ts';
import { merchantsBulk } from '../merchants/index.ts';
import { PAYER_VPA_FIELD } from '../payments/index.ts';
import { createCustomerHasher, rewardsBulk, rewardsHistory } from '../rewards/index.ts';
import type { EncryptedField, FieldCipher } from '../vault/index.ts';
import { v7 as uuidv7 } from 'uuid';
import { applyMapping, FieldProblem, missingColumns, type ImportKind, type Mapping } from './mapping.ts';
import { FileError, readRecords, type ReaderLimits, type SourceRecord } from './reader.ts';
import * as repo from './onboarding.repo.ts';
import {
  validateRow,
  type BalanceRow,
  type MerchantRef,
  type MerchantRow,
  type PaymentHistoryRow,
  type RowRules,
  type StoreRow,
  type TerminalRow,
} from './rows.ts';

// The import: a file, read as a stream, mapped, validated row by row with the API's rules, and
// applied in batches. Each batch is one transaction that writes the new rows (through the owning
// modules' bulk paths), their external references, the rejected lines, the per-merchant source
// totals and the job's checkpoint, so a run stopped anywhere (Ctrl-C, a crash, a lost database)
// resumes from the last committed batch, and a file run again finds every row's reference and
// changes nothing. A dry run does the same work in transactions it rolls back.

export const DEFAULT_BATCH_SIZE = 1000;
const DAY_MS = 86_400_000;

/**
 * The payer's VPA of a historical payment: sealed exactly as payments seals payments.payments'
 * (same purpose, so the same data and blind-index keys; same normalisation, so a VPA's blind index
 * is the same in both tables and one lookup finds both). Registered with the vault beside
 * PAYER_VPA_FIELD (src/app.ts ENCRYPTED_FIELDS), so key rotation rewraps it too.
 */
export const HISTORY_PAYER_VPA_FIELD: EncryptedField = {
  table: 'onboarding.payment_history',
  idColumn: 'id',
  column: 'payer_vpa_ct',
  purpose: PAYER_VPA_FIELD.purpose,
  blindIndex: { column: 'payer_vpa_bidx', normalize: PAYER_VPA_FIELD.blindIndex!.normalize },
};

/**
 * Ledger accounts of payment history (book INR). The legacy system took these payments and paid
 * the merchants itself, so history never touches bank_clearing or merchant_payable, which
 * settlement pays out from: it is a memorandum pair of its own. legacy_clearing:<bank> (asset)
 * is what the legacy system collected through that acquirer; legacy_settled:<merchant>
 * (liability, floor 0) what it collected and settled for the merchant, net of refunds.
 */
export const legacyAccounts = {
  clearing: (bank: string) => ({ code: `legacy_clearing:${bank}`, type: 'asset' as const }),
  settled: (merchantId: string) => ({ code: `legacy_settled:${merchantId}`, type: 'liability' as const, floor: 0 }),
};
const MERCHANTS_PER_ENTRY = 99;
const historyId = (prefix: 'lpy' | 'lrf', at: Date) =>
  `${prefix}_${uuidv7({ msecs: at.getTime() }).replaceAll('-', '')}`;

export const importId = () => `imp_${uuidv7().replaceAll('-', '')}`;
export const isImportId = (v: unknown): v is string => typeof v === 'string' && /^imp_[0-9a-f]{32}$/.test(v);

export interface OnboardingDeps {
  db: Db;
  ledger: Pick<LedgerService, 'post'>;
  /** The vault's field cipher: settlement accounts are sealed exactly as the API seals them. */
  fields: Pick<FieldCipher, 'seal'>;
  vpaPattern: RegExp;
  bankCodes: readonly string[];
  /** REWARDS_CUSTOMER_KEY: customers are keyed hashes, never raw VPAs or phones. */
  customerKey: Buffer;
  audit?: Pick<AuditWriter, 'record'>;
  clock: Clock;
}

export interface Progress {
  bytesRead: number;
  bytesTotal: number;
  lines: number;
  rows: number;
  created: number;
  unchanged: number;
  rejected: number;
}

export interface ImportInput {
  kind: ImportKind;
  mapping: Mapping;
  /** Opens the file (again): read once here, after the caller hashed it. */
  open: () => AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
  sha256: string;
  bytes: number;
  dryRun?: boolean;
  actor: Actor;
  batchSize?: number;
  limits?: Partial<ReaderLimits>;
  onProgress?: (p: Progress) => void;
  /** Stops between batches; the job is left 'interrupted' and resumes from its checkpoint. */
  signal?: AbortSignal;
  /** Called once the job exists (new or resumed), with its id: the API answers 202 then. */
  onStarted?: (importId: string) => void;
  /** Called after each committed batch (tests use it to stop a run part way). */
  afterBatch?: (batchNo: number) => void | Promise<void>;
}

export interface Reject {
  line: number;
  field: string | null;
  reason: string;
}

export interface ReconciliationLine {
  merchant_id: string;
  source_rows: number;
  tillpoint_rows: number;
  source_points: number;
  tillpoint_points: number;
  source_value_paise: number;
  tillpoint_value_paise: number;
}

export interface ImportReport {
  import_id: string;
  kind: ImportKind;
  mapping: string;
  file_sha256: string;
  file_bytes: number;
  dry_run: boolean;
  status: repo.ImportRow['status'];
  resumed_from_line: number;
  rows: number;
  created: number;
  unchanged: number;
  rejected: number;
  error: string | null;
  /** Only for a run that applied something (not a dry run). */
  reconciliation?: {
    merchants: number;
    matched: number;
    totals: Omit<ReconciliationLine, 'merchant_id'>;
    /** Merchants whose source and Tillpoint figures differ (the first 1000). */
    mismatches: ReconciliationLine[];
  };
  duration_ms: number;
}

class DryRunRollback extends Error {
  constructor(readonly result: BatchResult) {
    super('dry run');
  }
}

interface BatchResult {
  created: number;
  unchanged: number;
  rejects: Reject[];
  /** New external references; `kind` when not the import's own (a refund in a payments file). */
  refs: { scope: string; ref: string; entityId: string; kind?: repo.RefKind }[];
  totals: Map<string, { rows: number; points: number; value: number }>;
}

const REF_KIND: Record<ImportKind, repo.RefKind> = {
  merchants: 'merchant',
  stores: 'store',
  terminals: 'terminal',
  'reward-balances': 'reward_balance',
  payments: 'payment',
};

type Item<T> = { line: number; row: T };

export function createOnboardingService(deps: OnboardingDeps) {
  const { db, clock } = deps;
  const customerHash = createCustomerHasher(deps.customerKey);

  const newResult = (): BatchResult => ({ created: 0, unchanged: 0, rejects: [], refs: [], totals: new Map() });
  const addTotal = (r: BatchResult, merchantId: string, points = 0, value = 0) => {
    const t = r.totals.get(merchantId) ?? { rows: 0, points: 0, value: 0 };
    t.rows += 1;
    t.points += points;
    t.value += value;
    r.totals.set(merchantId, t);
  };

  /** Resolves the merchants rows name (by external reference or id); unknown ones are rejected. */
  async function resolveMerchants<T extends { merchant: MerchantRef }>(
    tx: Queryable,
    items: Item<T>[],
    res: BatchResult,
  ): Promise<(Item<T> & { merchantId: string })[]> {
    const refs = [...new Set(items.flatMap((i) => ('ref' in i.row.merchant ? [i.row.merchant.ref] : [])))];
    const ids = [...new Set(items.flatMap((i) => ('id' in i.row.merchant ? [i.row.merchant.id] : [])))];
    const byRef = await repo.knownRefs(
      tx,
      'merchant',
      refs.map((ref) => ({ scope: '', ref })),
    );
    const byId = await merchantsBulk.merchantsByIds(tx, ids);
    const out: (Item<T> & { merchantId: string })[] = [];
    for (const i of items) {
      const m = i.row.merchant;
      const id = 'ref' in m ? byRef.get(`\n${m.ref}`) : byId.has(m.id) ? m.id : undefined;
      if (!id) {
        res.rejects.push({
          line: i.line,
          field: 'ref' in m ? 'merchant_ref' : 'merchant_id',
          reason: 'ref' in m ? 'no merchant was imported with this reference' : 'no such merchant',
        });
      } else out.push({ ...i, merchantId: id });
    }
    return out;
  }

  /** Splits rows already imported (same reference in the same scope) from new ones; repeats in the batch are rejected. */
  async function splitKnown<I extends { line: number; scope: string; row: { external_ref: string } }>(
    tx: Queryable,
    kind: repo.RefKind,
    items: I[],
    res: BatchResult,
  ) {
    const seen = new Map<string, number>();
    const fresh: typeof items = [];
    const candidates: typeof items = [];
    for (const i of items) {
      const k = `${i.scope}\n${i.row.external_ref}`;
      const first = seen.get(k);
      if (first !== undefined) {
        res.rejects.push({ line: i.line, field: 'external_ref', reason: `repeats the reference of line ${first}` });
        continue;
      }
      seen.set(k, i.line);
      candidates.push(i);
    }
    const known = await repo.knownRefs(
      tx,
      kind,
      candidates.map((i) => ({ scope: i.scope, ref: i.row.external_ref })),
    );
    const existing: (I & { entityId: string })[] = [];
    for (const i of candidates) {
      const e = known.get(`${i.scope}\n${i.row.external_ref}`);
      if (e) existing.push({ ...i, entityId: e });
      else fresh.push(i);
    }
    return { fresh, existing };
  }

  async function applyMerchants(
    tx: Queryable,
    items: (Item<MerchantRow> & { id: string; sealed?: merchantsBulk.SealedSettlement })[],
    res: BatchResult,
  ) {
    const { fresh, existing } = await splitKnown(
      tx,
      'merchant',
      items.map((i) => ({ ...i, scope: '' })),
      res,
    );
    for (const e of existing) {
      res.unchanged++;
      addTotal(res, e.entityId);
    }
    const taken = await merchantsBulk.takenVpas(
      tx,
      fresh.map((i) => i.row.vpa),
    );
    const programs = new Map<string, rewardsBulk.ProgramRow | undefined>();
    for (const pid of new Set(fresh.flatMap((i) => (i.row.program_id ? [i.row.program_id] : []))))
      programs.set(pid, await rewardsBulk.getProgram(tx, pid));
    const vpaLine = new Map<string, number>();
    const ok: typeof fresh = [];
    for (const i of fresh) {
      const first = vpaLine.get(i.row.vpa);
      if (taken.has(i.row.vpa))
        res.rejects.push({ line: i.line, field: 'vpa', reason: 'is already used by a merchant' });
      else if (first !== undefined)
        res.rejects.push({ line: i.line, field: 'vpa', reason: `repeats the VPA of line ${first}` });
      else if (i.row.program_id && programs.get(i.row.program_id)?.owner_merchant_id !== null)
        res.rejects.push({ line: i.line, field: 'program_id', reason: 'no such coalition program' });
      else {
        vpaLine.set(i.row.vpa, i.line);
        ok.push(i);
      }
    }
    await merchantsBulk.insertMerchantsBatch(
      tx,
      ok.map((i) => ({
        id: i.id,
        name: i.row.name,
        vpa: i.row.vpa,
        mcc: i.row.mcc,
        acquiring_bank: i.row.acquiring_bank,
        settlement: i.sealed,
      })),
    );
    const byProgram = new Map<string, { merchant_id: string; mcc: string }[]>();
    for (const i of ok) {
      if (!i.row.program_id) continue;
      const l = byProgram.get(i.row.program_id) ?? [];
      l.push({ merchant_id: i.id, mcc: i.row.mcc });
      byProgram.set(i.row.program_id, l);
    }
    for (const [pid, members] of byProgram) await rewardsBulk.addMembersBatch(tx, pid, members, clock.now());
    for (const i of ok) {
      res.created++;
      res.refs.push({ scope: '', ref: i.row.external_ref, entityId: i.id });
      addTotal(res, i.id);
    }
  }

  async function applyStores(tx: Queryable, items: Item<StoreRow>[], res: BatchResult) {
    const resolved = await resolveMerchants(tx, items, res);
    const { fresh, existing } = await splitKnown(
      tx,
      'store',
      resolved.map((i) => ({ ...i, scope: i.merchantId })),
      res,
    );
    for (const e of existing) {
      res.unchanged++;
      addTotal(res, e.scope);
    }
    const rows = fresh.map((i) => ({ ...i, id: newId('store') }));
    await merchantsBulk.insertStoresBatch(
      tx,
      rows.map((i) => ({ id: i.id, merchant_id: i.merchantId, name: i.row.name, city: i.row.city })),
    );
    for (const i of rows) {
      res.created++;
      res.refs.push({ scope: i.merchantId, ref: i.row.external_ref, entityId: i.id });
      addTotal(res, i.merchantId);
    }
  }

  async function applyTerminals(tx: Queryable, items: Item<TerminalRow>[], res: BatchResult) {
    const resolved = await resolveMerchants(tx, items, res);
    const storeRefs = await repo.knownRefs(
      tx,
      'store',
      resolved.flatMap((i) => ('ref' in i.row.store ? [{ scope: i.merchantId, ref: i.row.store.ref }] : [])),
    );
    const storeIds = [
      ...new Set(resolved.flatMap((i) => ('id' in i.row.store ? [i.row.store.id] : []))),
      ...storeRefs.values(),
    ];
    const stores = await merchantsBulk.storesByIds(tx, storeIds);
    const withStore: (Item<TerminalRow> & { merchantId: string; storeId: string; scope: string })[] = [];
    for (const i of resolved) {
      const s = i.row.store;
      const sid = 'ref' in s ? storeRefs.get(`${i.merchantId}\n${s.ref}`) : s.id;
      const st = sid ? stores.get(sid) : undefined;
      const field = 'ref' in s ? 'store_ref' : 'store_id';
      if (!sid || !st || st.merchant_id !== i.merchantId)
        res.rejects.push({ line: i.line, field, reason: 'no such store for this merchant' });
      else if (st.status !== 'active') res.rejects.push({ line: i.line, field, reason: 'the store is closed' });
      else withStore.push({ ...i, storeId: sid, scope: i.merchantId });
    }
    const { fresh, existing } = await splitKnown(tx, 'terminal', withStore, res);
    for (const e of existing) {
      res.unchanged++;
      addTotal(res, e.scope);
    }
    const taken = await merchantsBulk.takenSerials(
      tx,
      fresh.flatMap((i) => (i.row.serial ? [i.row.serial] : [])),
    );
    const serialLine = new Map<string, number>();
    const ok: ((typeof fresh)[number] & { id: string })[] = [];
    for (const i of fresh) {
      const sn = i.row.serial;
      if (sn && taken.has(sn)) res.rejects.push({ line: i.line, field: 'serial', reason: 'is already registered' });
      else if (sn && serialLine.has(sn))
        res.rejects.push({ line: i.line, field: 'serial', reason: `repeats the serial of line ${serialLine.get(sn)}` });
      else {
        if (sn) serialLine.set(sn, i.line);
        ok.push({ ...i, id: newId('terminal') });
      }
    }
    await merchantsBulk.insertTerminalsBatch(
      tx,
      ok.map((i) => ({
        id: i.id,
        merchant_id: i.merchantId,
        store_id: i.storeId,
        label: i.row.label,
        serial: i.row.serial,
      })),
    );
    for (const i of ok) {
      res.created++;
      res.refs.push({ scope: i.merchantId, ref: i.row.external_ref, entityId: i.id });
      addTotal(res, i.merchantId);
    }
  }

  async function applyBalances(tx: Queryable, items: Item<BalanceRow>[], res: BatchResult, reference: string) {
    const resolved = await resolveMerchants(tx, items, res);
    const programs = await rewardsBulk.programsForMerchants(tx, [...new Set(resolved.map((i) => i.merchantId))]);
    const withProgram: (Item<BalanceRow> & {
      merchantId: string;
      scope: string;
      program: rewardsBulk.ProgramRow;
      points: number;
    })[] = [];
    for (const i of resolved) {
      const p = programs.get(i.merchantId);
      if (!p) {
        res.rejects.push({ line: i.line, field: 'merchant_ref', reason: 'the merchant is in no reward program' });
        continue;
      }
      let points = i.row.points;
      if (points === undefined) {
        const v = i.row.value_paise!;
        if (v % p.point_value_paise !== 0) {
          res.rejects.push({
            line: i.line,
            field: 'value_paise',
            reason: `is not a whole number of points at the program's ${p.point_value_paise} paise per point`,
          });
          continue;
        }
        points = v / p.point_value_paise;
      }
      withProgram.push({ ...i, scope: i.merchantId, program: p, points });
    }
    const { fresh, existing } = await splitKnown(tx, 'reward_balance', withProgram, res);
    for (const e of existing) {
      res.unchanged++;
      addTotal(res, e.scope, e.points, e.points * e.program.point_value_paise);
    }
    const now = clock.now();
    const lotIds = await rewardsBulk.postOpeningBalances(
      { ledger: deps.ledger },
      tx,
      fresh.map((i) => ({
        program: i.program,
        customerHash: i.row.customerHash,
        points: i.points,
        // No expiry in the file: the program's validity from today, as for points earned today.
        expiresAt:
          i.row.expires_at ??
          (i.program.validity_days === null ? null : new Date(now.getTime() + i.program.validity_days * DAY_MS)),
        sourceId: `${i.merchantId}:${i.row.external_ref}`,
      })),
      { reference, now },
    );
    fresh.forEach((i, n) => {
      res.created++;
      res.refs.push({ scope: i.merchantId, ref: i.row.external_ref, entityId: lotIds[n] });
      addTotal(res, i.merchantId, i.points, i.points * i.program.point_value_paise);
    });
  }

  /** Posts history's money per bank: one entry per (bank, up to 99 merchants); refunds the other way. */
  async function postHistoryMoney(
    tx: Queryable,
    kind: 'payment.history' | 'refund.history',
    reference: string,
    byBank: Map<string, Map<string, number>>,
  ) {
    for (const [bank, byMerchant] of byBank) {
      const entries = [...byMerchant.entries()];
      for (let n = 0; n < entries.length; n += MERCHANTS_PER_ENTRY) {
        const chunk = entries.slice(n, n + MERCHANTS_PER_ENTRY);
        const total = chunk.reduce((t, [, a]) => t + a, 0);
        const merchantLines = chunk.map(([m, a]) =>
          kind === 'payment.history'
            ? { account: legacyAccounts.settled(m), credit: a }
            : { account: legacyAccounts.settled(m), debit: a },
        );
        await deps.ledger.post(tx, {
          kind,
          reference: `${reference}:${bank}:${n / MERCHANTS_PER_ENTRY}`,
          lines:
            kind === 'payment.history'
              ? [{ account: legacyAccounts.clearing(bank), debit: total }, ...merchantLines]
              : [...merchantLines, { account: legacyAccounts.clearing(bank), credit: total }],
        });
      }
    }
  }

  const addTo = (m: Map<string, Map<string, number>>, bank: string, merchant: string, amount: number) => {
    let b = m.get(bank);
    if (!b) m.set(bank, (b = new Map()));
    b.set(merchant, (b.get(merchant) ?? 0) + amount);
  };
  /** What a row carries for the reconciliation: net money that moved, net points. */
  const historyTotals = (r: PaymentHistoryRow) => ({
    points: r.points_earned - r.points_redeemed,
    value: r.status !== 'succeeded' ? 0 : r.refund_of !== undefined ? -r.amount : r.amount,
  });

  async function applyPayments(
    tx: Queryable,
    importId: string,
    items: Item<PaymentHistoryRow>[],
    res: BatchResult,
    reference: string,
  ) {
    const resolved = await resolveMerchants(tx, items, res);
    const pays = resolved.filter((i) => i.row.refund_of === undefined);
    const refunds = resolved.filter((i) => i.row.refund_of !== undefined);

    // Payments: the terminal (by reference or id) must be the merchant's, and the store, if named, the terminal's.
    const termRefs = await repo.knownRefs(
      tx,
      'terminal',
      pays.flatMap((i) =>
        i.row.terminal && 'ref' in i.row.terminal ? [{ scope: i.merchantId, ref: i.row.terminal.ref }] : [],
      ),
    );
    const storeRefs = await repo.knownRefs(
      tx,
      'store',
      pays.flatMap((i) => (i.row.store_ref ? [{ scope: i.merchantId, ref: i.row.store_ref }] : [])),
    );
    const termId = (i: (typeof pays)[number]) => {
      const t = i.row.terminal!;
      return 'ref' in t ? termRefs.get(`${i.merchantId}\n${t.ref}`) : t.id;
    };
    const places = await repo.terminalPlaces(tx, [...new Set(pays.flatMap((i) => termId(i) ?? []))]);
    const placed: (Item<PaymentHistoryRow> & { merchantId: string; scope: string; place: repo.TerminalPlace })[] = [];
    for (const i of pays) {
      const field = 'ref' in i.row.terminal! ? 'terminal_ref' : 'terminal_id';
      const tid = termId(i);
      const place = tid ? places.get(tid) : undefined;
      if (!place || place.merchant_id !== i.merchantId)
        res.rejects.push({ line: i.line, field, reason: 'no such terminal for this merchant' });
      else if (i.row.store_ref && storeRefs.get(`${i.merchantId}\n${i.row.store_ref}`) !== place.store_id)
        res.rejects.push({ line: i.line, field: 'store_ref', reason: "is not the terminal's store" });
      else placed.push({ ...i, scope: i.merchantId, place });
    }
    const { fresh, existing } = await splitKnown(tx, 'payment', placed, res);
    for (const e of existing) {
      res.unchanged++;
      const t = historyTotals(e.row);
      addTotal(res, e.scope, t.points, t.value);
    }
    const withIds = fresh.map((i) => ({ ...i, id: historyId('lpy', i.row.created_at) }));
    // Points: the merchant's program; the rewards module writes them, oldest first, and may refuse
    // a redemption the customer could not have paid for (then nothing of that row is written).
    const needPoints = withIds.filter((i) => i.row.points_earned > 0 || i.row.points_redeemed > 0);
    const programs = await rewardsBulk.programsForMerchants(tx, [...new Set(needPoints.map((i) => i.merchantId))]);
    const refused = new Set<number>();
    const pointItems: (rewardsHistory.HistoricalPoints & { line: number })[] = [];
    for (const i of needPoints) {
      const p = programs.get(i.merchantId);
      if (!p) {
        res.rejects.push({ line: i.line, field: 'points_earned', reason: 'the merchant is in no reward program' });
        refused.add(i.line);
      } else
        pointItems.push({
          line: i.line,
          program: p,
          customerHash: i.row.customerHash!,
          paymentId: i.id,
          merchantId: i.merchantId,
          amountPaise: i.row.amount,
          at: i.row.completed_at ?? i.row.created_at,
          earned: i.row.points_earned,
          redeemed: i.row.points_redeemed,
        });
    }
    const outcomes = await rewardsHistory.postHistoricalPoints({ ledger: deps.ledger }, tx, pointItems, {
      reference,
      now: clock.now(),
    });
    outcomes.forEach((o, n) => {
      if (!o.ok) {
        res.rejects.push({ line: pointItems[n].line, field: o.field, reason: o.problem });
        refused.add(pointItems[n].line);
      }
    });
    const ok = withIds.filter((i) => !refused.has(i.line));
    const rows: repo.HistoryPaymentInsert[] = [];
    const money = new Map<string, Map<string, number>>();
    for (const i of ok) {
      const sealed = i.row.payer_vpa
        ? await deps.fields.seal(HISTORY_PAYER_VPA_FIELD, i.id, i.row.payer_vpa, tx)
        : undefined;
      const bank = i.row.bank_code ?? i.place.acquiring_bank;
      rows.push({
        id: i.id,
        merchant_id: i.merchantId,
        store_id: i.place.store_id,
        terminal_id: i.place.id,
        external_ref: i.row.external_ref,
        method: i.row.method,
        amount: i.row.amount,
        status: i.row.status,
        bank_code: bank,
        bank_ref: i.row.bank_ref ?? null,
        payer_vpa_ct: sealed?.ciphertext ?? null,
        payer_vpa_bidx: sealed?.blindIndex ?? null,
        points_earned: i.row.points_earned,
        points_redeemed: i.row.points_redeemed,
        created_at: i.row.created_at,
        completed_at: i.row.completed_at,
      });
      if (i.row.status === 'succeeded') addTo(money, bank, i.merchantId, i.row.amount);
      res.created++;
      res.refs.push({ scope: i.merchantId, ref: i.row.external_ref, entityId: i.id });
      const t = historyTotals(i.row);
      addTotal(res, i.merchantId, t.points, t.value);
    }
    await repo.insertPaymentHistory(tx, importId, rows);
    await postHistoryMoney(tx, 'payment.history', `${reference}:p`, money);

    // Refunds: of a payment imported before (this file or an earlier one), succeeded, never more than is left.
    if (refunds.length === 0) return;
    const justMade = new Map(rows.map((r) => [`${r.merchant_id}\n${r.external_ref}`, r.id]));
    const payRefs = await repo.knownRefs(
      tx,
      'payment',
      refunds.map((i) => ({ scope: i.merchantId, ref: i.row.refund_of! })),
    );
    const payIdOf = (i: (typeof refunds)[number]) => {
      const k = `${i.merchantId}\n${i.row.refund_of}`;
      return justMade.get(k) ?? payRefs.get(k);
    };
    const paid = await repo.historyPayments(tx, [...new Set(refunds.flatMap((i) => payIdOf(i) ?? []))]);
    const { fresh: freshRefunds, existing: knownRefunds } = await splitKnown(
      tx,
      'refund',
      refunds.map((i) => ({ ...i, scope: i.merchantId })),
      res,
    );
    for (const e of knownRefunds) {
      res.unchanged++;
      const t = historyTotals(e.row);
      addTotal(res, e.scope, t.points, t.value);
    }
    const refundRows: repo.HistoryRefundInsert[] = [];
    const refunded = new Map<string, number>();
    const back = new Map<string, Map<string, number>>();
    for (const i of freshRefunds) {
      const pid = payIdOf(i);
      const p = pid ? paid.get(pid) : undefined;
      if (!p) {
        res.rejects.push({ line: i.line, field: 'refund_of', reason: 'no payment was imported with this reference' });
        continue;
      }
      if (p.status !== 'succeeded') {
        res.rejects.push({
          line: i.line,
          field: 'refund_of',
          reason: `the payment ${p.status}; only a succeeded payment is refunded`,
        });
        continue;
      }
      if (p.completed_at && i.row.created_at < new Date(p.completed_at)) {
        res.rejects.push({ line: i.line, field: 'created_at', reason: 'is before the payment completed' });
        continue;
      }
      const left = Number(p.amount) - Number(p.refunded_amount) - (refunded.get(p.id) ?? 0);
      if (i.row.status === 'succeeded' && i.row.amount > left) {
        res.rejects.push({
          line: i.line,
          field: 'amount_paise',
          reason: `is more than is left to refund (${left} paise)`,
        });
        continue;
      }
      const id = historyId('lrf', i.row.created_at);
      refundRows.push({
        id,
        payment_id: p.id,
        merchant_id: i.merchantId,
        external_ref: i.row.external_ref,
        amount: i.row.amount,
        status: i.row.status,
        bank_ref: i.row.bank_ref ?? null,
        created_at: i.row.created_at,
        completed_at: i.row.completed_at,
      });
      if (i.row.status === 'succeeded') {
        refunded.set(p.id, (refunded.get(p.id) ?? 0) + i.row.amount);
        addTo(back, p.bank_code, i.merchantId, i.row.amount);
      }
      res.created++;
      res.refs.push({ scope: i.merchantId, ref: i.row.external_ref, entityId: id, kind: 'refund' });
      const t = historyTotals(i.row);
      addTotal(res, i.merchantId, t.points, t.value);
    }
    await repo.insertRefundHistory(tx, importId, refundRows);
    await repo.addRefunded(tx, refunded);
    await postHistoryMoney(tx, 'refund.history', `${reference}:r`, back);
  }

  /** Maps and validates a batch's records; what fails is a reject with its line. */
  function prepare(kind: ImportKind, mapping: Mapping, recs: SourceRecord[], rules: RowRules, res: BatchResult) {
    const valid: Item<ReturnType<typeof validateRow>>[] = [];
    for (const r of recs) {
      if (r.problem) {
        res.rejects.push({ line: r.line, field: null, reason: r.problem });
        continue;
      }
      try {
        valid.push({ line: r.line, row: validateRow(kind, applyMapping(mapping, r.fields), rules) });
      } catch (e) {
        if (!(e instanceof FieldProblem)) throw e;
        res.rejects.push({ line: r.line, field: e.field, reason: e.problem });
      }
    }
    return valid;
  }

  async function runBatch(job: repo.ImportRow, input: ImportInput, recs: SourceRecord[], expectedDone: number) {
    const rules: RowRules = {
      vpaPattern: deps.vpaPattern,
      bankCodes: deps.bankCodes,
      customerHash,
      now: clock.now(),
    };
    const pre = newResult();
    const valid = prepare(input.kind, input.mapping, recs, rules, pre);
    // Settlement accounts are sealed before the transaction (the vault may read keys), bound to the row id.
    let merchants: (Item<MerchantRow> & { id: string; sealed?: merchantsBulk.SealedSettlement })[] = [];
    if (input.kind === 'merchants') {
      merchants = [];
      for (const v of valid as Item<MerchantRow>[]) {
        const id = newId('merchant');
        const s = v.row.settlement;
        merchants.push({ ...v, id, sealed: s ? await merchantsBulk.sealSettlement(deps.fields, id, s) : undefined });
      }
    }
    const lastLine = recs[recs.length - 1].line;
    const work = async (tx: Queryable): Promise<BatchResult> => {
      const j = await repo.getImport(tx, job.id, true);
      if (!j || Number(j.lines_done) !== expectedDone || (j.status !== 'running' && !job.dry_run))
        throw new AppError('conflict', 'Another run is applying this file; wait for it or let it finish');
      const res: BatchResult = { ...newResult(), rejects: [...pre.rejects] };
      switch (input.kind) {
        case 'merchants':
          await applyMerchants(tx, merchants, res);
          break;
        case 'stores':
          await applyStores(tx, valid as Item<StoreRow>[], res);
          break;
        case 'terminals':
          await applyTerminals(tx, valid as Item<TerminalRow>[], res);
          break;
        case 'reward-balances':
          await applyBalances(tx, valid as Item<BalanceRow>[], res, `${job.id}:${recs[0].line}`);
          break;
        case 'payments':
          await applyPayments(tx, job.id, valid as Item<PaymentHistoryRow>[], res, `${job.id}:${recs[0].line}`);
          break;
      }
      if (job.dry_run) throw new DryRunRollback(res);
      await repo.insertRejects(tx, job.id, res.rejects);
      for (const kind of new Set(res.refs.map((r) => r.kind ?? REF_KIND[input.kind])))
        await repo.insertRefs(
          tx,
          job.id,
          kind,
          res.refs.filter((r) => (r.kind ?? REF_KIND[input.kind]) === kind),
        );
      await repo.addSourceTotals(tx, job.id, res.totals);
      await repo.advance(tx, job.id, {
        linesDone: lastLine,
        rows: recs.length,
        created: res.created,
        unchanged: res.unchanged,
        rejected: res.rejects.length,
      });
      return res;
    };
    try {
      return await db.tx(work);
    } catch (e) {
      if (!(e instanceof DryRunRollback)) throw e;
      // A dry run keeps what it found (counts and rejected lines), never the rows.
      const res = e.result;
      await db.tx(async (tx) => {
        await repo.insertRejects(tx, job.id, res.rejects);
        await repo.advance(tx, job.id, {
          linesDone: lastLine,
          rows: recs.length,
          created: res.created,
          unchanged: res.unchanged,
          rejected: res.rejects.length,
        });
      });
      return res;
    }
  }

  async function buildReport(
    job: repo.ImportRow,
    kind: ImportKind,
    resumedFrom: number,
    t0: number,
    status: ImportReport['status'],
    error: string | null,
  ) {
    const j = (await repo.getImport(db, job.id))!;
    const report: ImportReport = {
      import_id: j.id,
      kind,
      mapping: j.mapping,
      file_sha256: j.file_sha256,
      file_bytes: Number(j.file_bytes),
      dry_run: j.dry_run,
      status,
      resumed_from_line: resumedFrom,
      rows: Number(j.rows_total),
      created: Number(j.created),
      unchanged: Number(j.unchanged),
      rejected: Number(j.rejected),
      error,
      duration_ms: Math.round(performance.now() - t0),
    };
    if (!j.dry_run) {
      const lines = await repo.reconcile(db, j.id, REF_KIND[kind]);
      const totals = {
        source_rows: 0,
        tillpoint_rows: 0,
        source_points: 0,
        tillpoint_points: 0,
        source_value_paise: 0,
        tillpoint_value_paise: 0,
      };
      const mismatches: ReconciliationLine[] = [];
      let matched = 0;
      for (const l of lines) {
        const line: ReconciliationLine = {
          merchant_id: l.merchant_id,
          source_rows: Number(l.source_rows),
          tillpoint_rows: Number(l.tillpoint_rows),
          source_points: Number(l.source_points),
          tillpoint_points: Number(l.tillpoint_points),
          source_value_paise: Number(l.source_value_paise),
          tillpoint_value_paise: Number(l.tillpoint_value_paise),
        };
        for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += line[k];
        const same =
          line.source_rows === line.tillpoint_rows &&
          line.source_points === line.tillpoint_points &&
          line.source_value_paise === line.tillpoint_value_paise;
        if (same) matched++;
        else if (mismatches.length < 1000) mismatches.push(line);
      }
      report.reconciliation = { merchants: lines.length, matched, totals, mismatches };
    }
    return report;
  }

  return {
    /** Runs (or resumes) an import. Resolves with the report; a file that cannot be read ends as 'failed'. */
    async run(input: ImportInput): Promise<ImportReport> {
      const t0 = performance.now();
      const batchSize = input.batchSize ?? DEFAULT_BATCH_SIZE;
      if (input.mapping.kind !== input.kind)
        throw new AppError('validation_failed', `The mapping is for ${input.mapping.kind}, not ${input.kind}`, [
          { field: 'mapping', problem: `is for ${input.mapping.kind}` },
        ]);
      const resumable = input.dryRun ? undefined : await repo.findUnfinished(db, input.kind, input.sha256);
      let job: repo.ImportRow;
      if (resumable) {
        await repo.markRunning(db, resumable.id);
        job = { ...resumable, status: 'running' };
      } else {
        job = await db.tx(async (tx) => {
          const j = await repo.insertImport(tx, {
            id: importId(),
            kind: input.kind,
            format: input.mapping.format,
            mapping: input.mapping.name,
            file_sha256: input.sha256,
            file_bytes: input.bytes,
            dry_run: input.dryRun === true,
            actor: `${input.actor.type}:${input.actor.id ?? 'unknown'}`,
          });
          await deps.audit?.record(tx, {
            action: 'import.started',
            actor: input.actor,
            resource: { type: 'import', id: j.id },
            details: {
              kind: input.kind,
              file_sha256: input.sha256,
              bytes: input.bytes,
              dry_run: input.dryRun === true,
            },
          });
          return j;
        });
      }
      input.onStarted?.(job.id);
      const resumedFrom = Number(job.lines_done);
      let done = resumedFrom;
      const progress: Progress = {
        bytesRead: 0,
        bytesTotal: input.bytes,
        lines: 0,
        rows: Number(job.rows_total),
        created: Number(job.created),
        unchanged: Number(job.unchanged),
        rejected: Number(job.rejected),
      };
      let batch: SourceRecord[] = [];
      let batchNo = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const res = await runBatch(job, input, batch, done);
        done = batch[batch.length - 1].line;
        progress.rows += batch.length;
        progress.created += res.created;
        progress.unchanged += res.unchanged;
        progress.rejected += res.rejects.length;
        progress.lines = done;
        batch = [];
        input.onProgress?.({ ...progress });
        await input.afterBatch?.(++batchNo);
      };
      let checkedHeader = false;
      let outcome: { status: 'completed' | 'failed' | 'interrupted'; error?: string } = { status: 'completed' };
      try {
        for await (const rec of readRecords(input.open(), input.mapping.format, {
          limits: input.limits,
          onBytes: (n) => {
            progress.bytesRead += n;
          },
        })) {
          if (!checkedHeader && input.mapping.format === 'csv' && !rec.problem) {
            // Every record of a CSV has the header's columns: a column the mapping needs is checked once.
            const missing = missingColumns(input.mapping, Object.keys(rec.fields));
            if (missing.length > 0)
              throw new FileError(
                `the file has no column ${missing.map((c) => `"${c.slice(0, 60)}"`).join(', ')} that mapping ${input.mapping.name} reads`,
                1,
              );
            checkedHeader = true;
          }
          if (rec.line <= resumedFrom) continue;
          batch.push(rec);
          if (batch.length >= batchSize) {
            await flush();
            if (input.signal?.aborted) {
              outcome = { status: 'interrupted', error: 'stopped; run the same file again to resume' };
              break;
            }
          }
        }
        if (outcome.status === 'completed') await flush();
      } catch (e) {
        if (!(e instanceof FileError)) throw e; // the job stays 'running' at its checkpoint: run again to resume
        outcome = { status: 'failed', error: e.message };
      }
      const reportStatus = outcome.status;
      // The report first, then the final status with it in one transaction: whoever polls the
      // job never sees it finished without its report.
      const report = await buildReport(job, input.kind, resumedFrom, t0, reportStatus, outcome.error ?? null);
      await db.tx(async (tx) => {
        await repo.finish(tx, job.id, reportStatus, { error: outcome.error, report });
        await deps.audit?.record(tx, {
          action: `import.${reportStatus}`,
          outcome: reportStatus === 'failed' ? 'failure' : 'success',
          actor: input.actor,
          resource: { type: 'import', id: job.id },
          details: {
            kind: input.kind,
            file_sha256: input.sha256,
            dry_run: job.dry_run,
            rows: report.rows,
            created: report.created,
            unchanged: report.unchanged,
            rejected: report.rejected,
          },
        });
      });
      return report;
    },

    /** Every merchant's line of the reconciliation (for the CSV kept beside the report). */
    async reconciliationLines(id: string): Promise<ReconciliationLine[]> {
      const j = await repo.getImport(db, id);
      if (!j) return [];
      return (await repo.reconcile(db, id, REF_KIND[j.kind as ImportKind])).map((l) => ({
        merchant_id: l.merchant_id,
        source_rows: Number(l.source_rows),
        tillpoint_rows: Number(l.tillpoint_rows),
        source_points: Number(l.source_points),
        tillpoint_points: Number(l.tillpoint_points),
        source_value_paise: Number(l.source_value_paise),
        tillpoint_value_paise: Number(l.tillpoint_value_paise),
      }));
    },

    get: (id: string) => (isImportId(id) ? repo.getImport(db, id) : Promise.resolve(undefined)),
    list: (f: { before?: string; limit: number }) => repo.listImports(db, f),
    rejects: (id: string, f: { afterLine?: number; limit: number }) => repo.listRejects(db, id, f),

    /** Marks a job whose process died as interrupted (the API does this at start for its own jobs). */
    markInterrupted: (id: string) => repo.finish(db, id, 'interrupted', { error: 'the process running it stopped' }),
  };
}

export type OnboardingService = ReturnType<typeof createOnboardingService>;
