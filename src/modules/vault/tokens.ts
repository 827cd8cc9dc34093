import { randomBytes } from 'node:crypto';
import type { Db, Queryable } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { AppError } from '../../platform/errors.ts';
import { maskBankAccount, maskName, maskPan, maskPhone, maskVpa } from '../../platform/mask.ts';
import type { Principal } from '../../platform/principal.ts';
import type { EncryptedField, FieldCipher } from './fields.ts';
import { VaultError } from './errors.ts';

// Tokenization: a business table stores `tok_…` instead of a VPA, phone number, PAN or account
// number. The value itself sits encrypted in vault.tokens, bound to its token. The same value
// from the same owner always gets the same token (found through a blind index), so a token can
// stand for a customer. Turning a token back into its value needs the `vault:detokenize`
// permission, and every attempt is recorded before any value leaves (vault.access_log, plus the
// audit hook when the audit module is wired in).

export const TOKEN_PURPOSES = ['vpa', 'phone', 'pan', 'bank_account', 'name', 'email'] as const;
export type TokenPurpose = (typeof TOKEN_PURPOSES)[number];

export const TOKENS_FIELD: EncryptedField = {
  table: 'vault.tokens',
  idColumn: 'token',
  column: 'value_ct',
  purpose: 'tokens',
  blindIndex: { column: 'value_bidx', purpose: 'tokens' },
};

const TOKEN_RE = /^tok_[A-Za-z0-9_-]{24}$/;
const PLATFORM_OWNER = 'platform';

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Validates and normalizes a value for its purpose: one spelling, one token. */
export function normalizeTokenValue(purpose: TokenPurpose, raw: string, vpaPattern: RegExp): string {
  const bad = (problem: string) =>
    new AppError('validation_failed', `value is not a valid ${purpose}`, [{ field: 'body.value', problem }]);
  const v = raw.trim();
  switch (purpose) {
    case 'vpa':
      if (!vpaPattern.test(v)) throw bad('must be a UPI address (handle@psp)');
      return v.toLowerCase();
    case 'phone': {
      const d = v.replace(/[\s()-]/g, '');
      if (/^[6-9]\d{9}$/.test(d)) return `+91${d}`;
      if (!/^\+[1-9]\d{7,14}$/.test(d)) throw bad('must be a 10-digit Indian mobile number or +<country code><number>');
      return d;
    }
    case 'pan': {
      const d = v.replace(/[\s-]/g, '');
      if (!/^\d{12,19}$/.test(d) || !luhn(d)) throw bad('must be 12-19 digits with a valid check digit');
      return d;
    }
    case 'bank_account':
      if (!/^\d{9,18}$/.test(v)) throw bad('must be 9-18 digits');
      return v;
    case 'name':
      if (!/^[^\u0000-\u001f\u007f]{1,100}$/.test(v)) throw bad('must be 1-100 printable characters');
      return v.replace(/\s+/g, ' ');
    case 'email':
      if (!/^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,63}$/.test(v)) throw bad('must be an email address');
      return v.toLowerCase();
  }
}

export function maskTokenValue(purpose: TokenPurpose, v: string): string {
  switch (purpose) {
    case 'vpa':
      return maskVpa(v)!;
    case 'phone':
      return maskPhone(v)!;
    case 'pan':
      return maskPan(v)!;
    case 'bank_account':
      return maskBankAccount(v)!;
    case 'name':
      return maskName(v)!;
    case 'email':
      return maskVpa(v)!; // same shape: two characters, then the domain
  }
}

/** What the audit trail gets for every detokenization attempt. */
export interface DetokenizeEvent {
  actor: { type: Principal['kind'] | 'system'; id: string; merchantId: string | null };
  token: string;
  purpose: TokenPurpose | null;
  reason: string;
  outcome: 'allowed' | 'denied' | 'not_found';
  requestId?: string;
  remoteAddr?: string;
  at: Date;
}

/**
 * The audit trail plugs in here (auditHook.ts adapts the audit module's writer). It runs in the
 * transaction that writes vault.access_log; if it fails, nothing is recorded and nothing is
 * returned (fail closed).
 */
export interface DetokenizeAuditHook {
  recordDetokenize(tx: Queryable, event: DetokenizeEvent): Promise<void>;
}

export interface TokensDeps {
  db: Db;
  cipher: FieldCipher;
  clock: Clock;
  vpaPattern: RegExp;
  audit?: DetokenizeAuditHook;
  onDetokenize?(outcome: DetokenizeEvent['outcome']): void;
}

const ownerOf = (p: Principal) => p.merchantId ?? PLATFORM_OWNER;

export function createTokenService(deps: TokensDeps) {
  const { db, cipher, clock } = deps;

  async function record(e: DetokenizeEvent) {
    await db.tx(async (tx) => {
      await tx.query(
        `INSERT INTO vault.access_log (at, actor, action, token, purpose, reason, outcome, request_id, remote_addr)
         VALUES ($1, $2, 'detokenize', $3, $4, $5, $6, $7, $8)`,
        [
          e.at,
          `${e.actor.type}:${e.actor.id}`,
          e.token,
          e.purpose,
          e.reason,
          e.outcome,
          e.requestId ?? null,
          e.remoteAddr ?? null,
        ],
      );
      await deps.audit?.recordDetokenize(tx, e);
    });
    deps.onDetokenize?.(e.outcome);
  }

  return {
    /** Returns the owner's token for this value, creating it the first time. */
    async tokenize(principal: Principal, input: { purpose: TokenPurpose; value: string }) {
      if (!TOKEN_PURPOSES.includes(input.purpose))
        throw new AppError('validation_failed', 'unknown token purpose', [
          { field: 'body.purpose', problem: `must be one of ${TOKEN_PURPOSES.join(', ')}` },
        ]);
      const value = normalizeTokenValue(input.purpose, input.value, deps.vpaPattern);
      const owner = ownerOf(principal);
      const masked = maskTokenValue(input.purpose, value);
      // What is stored (and indexed) is "<purpose>:<value>": the same digits as a phone number and
      // as an account number are different entries, and a purpose column changed in the table no
      // longer matches the value it decrypts to.
      const stored = `${input.purpose}:${value}`;
      const candidates = await cipher.lookupIndexes(TOKENS_FIELD, stored);
      const found = await db.query<{ token: string }>(
        `SELECT token FROM vault.tokens WHERE owner = $1 AND purpose = $2 AND value_bidx = ANY($3::text[]) LIMIT 1`,
        [owner, input.purpose, candidates],
      );
      if (found.rows[0]) return { token: found.rows[0].token, purpose: input.purpose, masked, created: false };
      const token = `tok_${randomBytes(18).toString('base64url')}`;
      const sealed = await cipher.seal(TOKENS_FIELD, token, stored);
      const bidx = sealed.blindIndex!;
      const ins = await db.query<{ token: string }>(
        `INSERT INTO vault.tokens (token, owner, purpose, value_ct, value_bidx, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (owner, purpose, value_bidx) DO NOTHING RETURNING token`,
        [token, owner, input.purpose, sealed.ciphertext, bidx, clock.now()],
      );
      if (ins.rows[0]) return { token, purpose: input.purpose, masked, created: true };
      // Another request tokenized the same value at the same moment: theirs is the token.
      const again = await db.query<{ token: string }>(
        `SELECT token FROM vault.tokens WHERE owner = $1 AND purpose = $2 AND value_bidx = $3`,
        [owner, input.purpose, bidx],
      );
      return { token: again.rows[0].token, purpose: input.purpose, masked, created: false };
    },

    /**
     * The value behind a token. The caller's route demands `vault:detokenize`; here a merchant
     * key reaches only its own tokens. The attempt is recorded before the value is read.
     */
    async detokenize(
      principal: Principal | { kind: 'system'; id: string; merchantId: null },
      input: { token: string; reason: string },
      ctx: { requestId?: string; remoteAddr?: string } = {},
    ) {
      const actor = { type: principal.kind, id: principal.id, merchantId: principal.merchantId };
      const base = {
        actor,
        token: TOKEN_RE.test(input.token) ? input.token : '(malformed)',
        reason: input.reason,
        requestId: ctx.requestId,
        remoteAddr: ctx.remoteAddr,
      };
      const row = TOKEN_RE.test(input.token)
        ? (
            await db.query<{ token: string; owner: string; purpose: TokenPurpose; value_ct: string }>(
              `SELECT token, owner, purpose, value_ct FROM vault.tokens WHERE token = $1`,
              [input.token],
            )
          ).rows[0]
        : undefined;
      if (!row) {
        await record({ ...base, purpose: null, outcome: 'not_found', at: clock.now() });
        throw new AppError('token_not_found', 'Token not found');
      }
      if (principal.merchantId !== null && row.owner !== principal.merchantId) {
        // Same answer as an unknown token: never confirm another merchant's token exists.
        await record({ ...base, purpose: row.purpose, outcome: 'denied', at: clock.now() });
        throw new AppError('token_not_found', 'Token not found');
      }
      await record({ ...base, purpose: row.purpose, outcome: 'allowed', at: clock.now() });
      const stored = await cipher.open(TOKENS_FIELD, row.token, row.value_ct);
      const sep = stored.indexOf(':');
      if (stored.slice(0, sep) !== row.purpose)
        throw new VaultError(
          'wrong_purpose',
          `vault.tokens row ${row.token}: the value does not belong to purpose ${row.purpose}`,
        );
      return { token: row.token, purpose: row.purpose, value: stored.slice(sep + 1) };
    },

    /** For services that hold a token and need the value internally (settlement, say): audited the same way. */
    async detokenizeForSystem(system: string, token: string, reason: string) {
      return this.detokenize({ kind: 'system', id: system, merchantId: null }, { token, reason });
    },
  };
}

export type TokenService = ReturnType<typeof createTokenService>;
