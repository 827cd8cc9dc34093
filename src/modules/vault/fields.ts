import type { Queryable } from '../../platform/db.ts';
import { VaultError } from './errors.ts';
import { blindIndexValue, isPurpose, openValue, parseCiphertext, sealValue, type Binding } from './envelope.ts';
import type { KeyStore } from './keystore.ts';

// Field-level encryption for columns other modules own. The owning module declares each
// encrypted column once (an EncryptedField), uses seal/open/lookup through this cipher, and hands
// the declaration to the vault so the worker can re-encrypt the column after a rotation.

export interface EncryptedField {
  /** Schema-qualified table, e.g. "payments.payments". */
  table: string;
  /** Primary-key column; its value is part of every ciphertext's associated data. */
  idColumn: string;
  /** Column holding the ciphertext. */
  column: string;
  /** Which data key encrypts it; one purpose may serve several columns. */
  purpose: string;
  /** A keyed blind index beside the ciphertext, for lookups by value. */
  blindIndex?: {
    column: string;
    /** The HMAC key's purpose; default: the field's purpose. */
    purpose?: string;
    /** Applied before hashing, identically at write and lookup (e.g. lower-casing a VPA). */
    normalize?: (value: string) => string;
  };
  /** A plaintext column from before encryption, moved into the ciphertext and emptied by the worker. */
  legacyPlaintextColumn?: string;
}

const IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;
const TABLE_RE = /^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$/;

export const fieldName = (f: EncryptedField) => `${f.table}.${f.column}`;
export const indexPurpose = (f: EncryptedField) => f.blindIndex?.purpose ?? f.purpose;

/** Checks a declaration once: its names are put into SQL by the re-encryption job. */
export function checkField(f: EncryptedField): EncryptedField {
  const bad = (what: string) => new VaultError('invalid_field', `encrypted field ${f.table}.${f.column}: ${what}`);
  if (!TABLE_RE.test(f.table)) throw bad('table must be schema.table in lower case');
  for (const c of [f.idColumn, f.column, f.blindIndex?.column, f.legacyPlaintextColumn]) {
    if (c !== undefined && !IDENT_RE.test(c)) throw bad(`"${c}" is not a plain column name`);
  }
  if (!isPurpose(f.purpose) || !isPurpose(indexPurpose(f))) throw bad('purpose must be a-z, 0-9, _ (up to 40)');
  return f;
}

export interface SealedField {
  ciphertext: string;
  /** Present when the field has a blind index. */
  blindIndex?: string;
}

export interface FieldCipherHooks {
  onDecryptFailure?(code: string): void;
}

export function createFieldCipher(keys: KeyStore, hooks: FieldCipherHooks = {}) {
  const binding = (f: EncryptedField, rowId: string): Binding => {
    if (typeof rowId !== 'string' || rowId.length === 0)
      throw new VaultError('invalid_field', `${fieldName(f)}: a row id is required`);
    return { table: f.table, column: f.column, rowId };
  };
  const normalize = (f: EncryptedField, v: string) => (f.blindIndex?.normalize ? f.blindIndex.normalize(v) : v);

  async function blindIndex(f: EncryptedField, value: string, q?: Queryable): Promise<string> {
    const k = await keys.active(indexPurpose(f), 'hmac', q);
    return blindIndexValue(k.key, k.version, normalize(f, value));
  }

  // Every method takes an optional `q`: pass the transaction handle when calling inside one.
  return {
    /** Encrypts `value` for this row (and computes its blind index, if the field has one). */
    async seal(f: EncryptedField, rowId: string, value: string, q?: Queryable): Promise<SealedField> {
      const b = binding(f, rowId);
      const k = await keys.active(f.purpose, 'aead', q);
      const ciphertext = sealValue(k.key, f.purpose, k.version, b, value);
      return f.blindIndex ? { ciphertext, blindIndex: await blindIndex(f, value, q) } : { ciphertext };
    },

    /** Decrypts a value of this row. Throws VaultError when it was altered, moved or its key retired. */
    async open(f: EncryptedField, rowId: string, ciphertext: string, q?: Queryable): Promise<string> {
      const b = binding(f, rowId);
      try {
        const parsed = parseCiphertext(ciphertext, b);
        if (parsed.purpose !== f.purpose) {
          throw new VaultError(
            'wrong_purpose',
            `${b.table}.${b.column} row ${b.rowId}: ciphertext is for purpose ${parsed.purpose}, not ${f.purpose}`,
          );
        }
        return openValue(await keys.version(parsed.purpose, 'aead', parsed.version, q), parsed, b);
      } catch (e) {
        if (e instanceof VaultError) hooks.onDecryptFailure?.(e.code);
        throw e;
      }
    },

    blindIndex,

    /**
     * The blind indexes `value` may be stored under: one per index-key version still live, so
     * lookups keep finding rows while a rotation is being worked through.
     */
    async lookupIndexes(f: EncryptedField, value: string, q?: Queryable): Promise<string[]> {
      if (!f.blindIndex) throw new VaultError('invalid_field', `${fieldName(f)} has no blind index`);
      const n = normalize(f, value);
      return (await keys.live(indexPurpose(f), 'hmac', q)).map((k) => blindIndexValue(k.key, k.version, n));
    },
  };
}

export type FieldCipher = ReturnType<typeof createFieldCipher>;
