import type { Db } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { newId, isId } from '../../platform/ids.ts';
import type { Principal } from '../../platform/principal.ts';
import { canAccessMerchant, merchantScope } from '../../platform/principal.ts';
import { page } from '../../http/pagination.ts';
import * as repo from './merchants.repo.ts';
import type { MerchantT, StoreT, TerminalT } from './merchants.schemas.ts';
import type { AuditWriter } from '../audit/index.ts';
import type { FieldCipher } from '../vault/index.ts';
import { SETTLEMENT_ACCOUNT_FIELD, SETTLEMENT_IFSC_FIELD } from './merchants.fields.ts';
import { sealSettlement as sealSettlementFields } from './merchants.bulk.ts';

export interface MerchantsDeps {
  db: Db;
  /** Bank codes a merchant may name as its acquirer. */
  bankCodes: readonly string[];
  vpaPattern: RegExp;
  /** The audit trail: every create and change is recorded in its own transaction. */
  audit?: Pick<AuditWriter, 'record'>;
  /** The vault: the settlement account is stored encrypted. */
  fields: Pick<FieldCipher, 'seal' | 'open'>;
}

type SettlementIn = { account_number: string; ifsc: string };

export function createMerchantsService({ db, bankCodes, vpaPattern, audit, fields }: MerchantsDeps) {
  /** Encrypts the account for this merchant's row (outside any transaction: it may read keys). */
  async function sealSettlement(
    merchantId: string,
    s: SettlementIn | undefined,
  ): Promise<repo.SealedSettlement | undefined> {
    // One implementation for the API and the bulk import (merchants.bulk.ts).
    return s ? sealSettlementFields(fields, merchantId, s) : undefined;
  }

  const checkBank = (code: string | undefined) => {
    if (code !== undefined && !bankCodes.includes(code)) {
      throw new AppError('validation_failed', `Unknown acquiring bank "${code}"`, [
        { field: 'body.acquiring_bank', problem: `must be one of ${bankCodes.join(', ')}` },
      ]);
    }
  };

  /** Loads a merchant the caller may see; anything else is "not found". */
  async function visibleMerchant(p: Principal, id: string): Promise<MerchantT> {
    const m = isId('merchant', id) && canAccessMerchant(p, id) ? await repo.getMerchant(db, id) : undefined;
    if (!m) throw new AppError('merchant_not_found', 'Merchant not found');
    return m;
  }

  async function visibleTerminal(p: Principal, id: string): Promise<TerminalT> {
    const t = isId('terminal', id) ? await repo.getTerminal(db, id) : undefined;
    if (!t || !canAccessMerchant(p, t.merchant_id)) throw new AppError('terminal_not_found', 'Terminal not found');
    return t;
  }

  return {
    async createMerchant(
      p: Principal,
      {
        settlement_account,
        ...input
      }: { name: string; vpa: string; mcc: string; acquiring_bank: string; settlement_account?: SettlementIn },
    ) {
      if (p.merchantId !== null) throw new AppError('forbidden', 'Only a platform key can create merchants');
      if (!vpaPattern.test(input.vpa)) throw new AppError('invalid_vpa', 'The merchant VPA is not a valid UPI address');
      checkBank(input.acquiring_bank);
      const id = newId('merchant');
      const settlement = await sealSettlement(id, settlement_account);
      return db.tx(async (tx) => {
        const m = await repo.insertMerchant(tx, { id, ...input, vpa: input.vpa.toLowerCase(), settlement });
        await audit?.record(tx, {
          action: 'merchant.created',
          resource: { type: 'merchant', id: m.id, merchant_id: m.id },
        });
        return m;
      });
    },
    getMerchant: visibleMerchant,
    /**
     * The full settlement account, decrypted, for paying the merchant out. Not behind any route:
     * settlement calls it in-process, and each call is recorded in the audit trail.
     */
    async getSettlementAccount(merchantId: string, reason: string): Promise<SettlementIn | null> {
      const ct = await repo.getSettlementCiphertexts(db, merchantId);
      if (!ct?.account_ct || !ct.ifsc_ct) return null;
      await audit?.record(db, {
        action: 'merchant.settlement_account.read',
        resource: { type: 'merchant', id: merchantId, merchant_id: merchantId },
        details: { reason: reason.slice(0, 60) },
      });
      return {
        account_number: await fields.open(SETTLEMENT_ACCOUNT_FIELD, merchantId, ct.account_ct),
        ifsc: await fields.open(SETTLEMENT_IFSC_FIELD, merchantId, ct.ifsc_ct),
      };
    },
    async updateMerchant(
      p: Principal,
      id: string,
      patch: { name?: string; acquiring_bank?: string; status?: string; settlement_account?: SettlementIn },
    ) {
      await visibleMerchant(p, id);
      if (patch.status !== undefined && p.merchantId !== null)
        throw new AppError('forbidden', 'Only a platform key can change a merchant status');
      checkBank(patch.acquiring_bank);
      const { settlement_account, ...rest } = patch;
      const settlement = await sealSettlement(id, settlement_account);
      return db.tx(async (tx) => {
        const m = (await repo.updateMerchant(tx, id, { ...rest, settlement }))!;
        await audit?.record(tx, {
          action: 'merchant.updated',
          resource: { type: 'merchant', id, merchant_id: id },
          details: { fields: Object.keys(patch), status: patch.status },
        });
        return m;
      });
    },
    async listMerchants(p: Principal, q: { limit: number; before?: string }) {
      return page(
        await repo.listMerchants(db, { onlyId: merchantScope(p), before: q.before, limit: q.limit }),
        q.limit,
      );
    },

    async createStore(p: Principal, merchantId: string, input: { name: string; city?: string }): Promise<StoreT> {
      await visibleMerchant(p, merchantId);
      return db.tx(async (tx) => {
        const st = await repo.insertStore(tx, { id: newId('store'), merchant_id: merchantId, ...input });
        await audit?.record(tx, {
          action: 'store.created',
          resource: { type: 'store', id: st.id, merchant_id: merchantId },
        });
        return st;
      });
    },
    async getStore(p: Principal, merchantId: string, storeId: string): Promise<StoreT> {
      await visibleMerchant(p, merchantId);
      const s = isId('store', storeId) ? await repo.getStore(db, storeId) : undefined;
      if (!s || s.merchant_id !== merchantId) throw new AppError('store_not_found', 'Store not found');
      return s;
    },
    async listStores(p: Principal, merchantId: string, q: { limit: number; before?: string }) {
      await visibleMerchant(p, merchantId);
      return page(await repo.listStores(db, { merchantId, before: q.before, limit: q.limit }), q.limit);
    },

    async createTerminal(
      p: Principal,
      input: { store_id: string; label?: string; serial?: string },
    ): Promise<TerminalT> {
      const s = await repo.getStore(db, input.store_id);
      if (!s || !canAccessMerchant(p, s.merchant_id)) throw new AppError('store_not_found', 'Store not found');
      if (s.status !== 'active') throw new AppError('conflict', 'The store is closed');
      return db.tx(async (tx) => {
        const t = await repo.insertTerminal(tx, { id: newId('terminal'), merchant_id: s.merchant_id, ...input });
        await audit?.record(tx, {
          action: 'terminal.created',
          resource: { type: 'terminal', id: t.id, merchant_id: t.merchant_id },
          origin: { terminal_id: t.id },
        });
        return t;
      });
    },
    getTerminal: visibleTerminal,
    async updateTerminal(p: Principal, id: string, patch: { label?: string; status?: string }) {
      await visibleTerminal(p, id);
      return db.tx(async (tx) => {
        const t = (await repo.updateTerminal(tx, id, patch))!;
        await audit?.record(tx, {
          action: 'terminal.updated',
          resource: { type: 'terminal', id, merchant_id: t.merchant_id },
          details: { fields: Object.keys(patch), status: patch.status },
        });
        return t;
      });
    },
    async listTerminals(
      p: Principal,
      q: { merchant_id?: string; store_id?: string; status?: string; online?: boolean; limit: number; before?: string },
    ) {
      const merchantId = merchantScope(p, q.merchant_id);
      return page(
        await repo.listTerminals(db, {
          merchantId,
          storeId: q.store_id,
          status: q.status,
          online: q.online,
          before: q.before,
          limit: q.limit,
        }),
        q.limit,
      );
    },
  };
}

export type MerchantsService = ReturnType<typeof createMerchantsService>;
