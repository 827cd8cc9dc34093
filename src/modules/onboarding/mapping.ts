import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStrictJson } from '../../http/strictJson.ts';
import { AppError } from '../../platform/errors.ts';
import type { FileFormat } from './reader.ts';

// A column mapping is data, like a bank file mapping: which source column (or constant) fills
// each Tillpoint field, and a short list of named transforms applied in order. Mappings ship in
// mappings/ beside this file (one per kind for Tillpoint's own column names, and one per kind for
// the legacy SQL Server export in docs/migration.md); an operator can write their own.
//
// {
//   "kind": "merchants", "format": "csv", "description": "…",
//   "fields": {
//     "external_ref": { "column": "MerchantCode" },
//     "mcc":          { "column": "MCC", "transform": ["trim", "pad4"] },
//     "program_id":   { "value": "prg_…" }
//   }
// }

export const IMPORT_KINDS = ['merchants', 'stores', 'terminals', 'reward-balances', 'payments'] as const;
export type ImportKind = (typeof IMPORT_KINDS)[number];
export const isImportKind = (k: unknown): k is ImportKind => IMPORT_KINDS.includes(k as ImportKind);

/** The Tillpoint fields of each kind (row.ts validates them). */
export const TARGET_FIELDS: Record<ImportKind, readonly string[]> = {
  merchants: [
    'external_ref',
    'name',
    'vpa',
    'mcc',
    'acquiring_bank',
    'settlement_account_number',
    'settlement_ifsc',
    'program_id',
  ],
  stores: ['external_ref', 'merchant_ref', 'merchant_id', 'name', 'city'],
  terminals: ['external_ref', 'merchant_ref', 'merchant_id', 'store_ref', 'store_id', 'label', 'serial'],
  'reward-balances': [
    'external_ref',
    'merchant_ref',
    'merchant_id',
    'vpa',
    'phone',
    'points',
    'value_paise',
    'expires_at',
  ],
  // Payment history from a legacy system (a row with refund_of is a refund of that earlier payment).
  payments: [
    'external_ref',
    'merchant_ref',
    'merchant_id',
    'store_ref',
    'terminal_ref',
    'terminal_id',
    'refund_of',
    'method',
    'amount_paise',
    'status',
    'created_at',
    'completed_at',
    'payer_vpa',
    'bank_ref',
    'bank_code',
    'customer_vpa',
    'customer_phone',
    'points_earned',
    'points_redeemed',
  ],
};

export const TRANSFORMS = [
  'trim',
  'upper',
  'lower',
  /** Left-pads with zeros to 4 characters (an MCC that a spreadsheet turned into a number). */
  'pad4',
  /** "1234.50" rupees -> "123450" paise, exactly; more than 2 decimals is refused, never rounded. */
  'rupees_to_paise',
  /** "31/12/2026" -> "2026-12-31". */
  'date_dmy',
  /** An empty value counts as absent. */
  'empty_as_absent',
  /** "2026-09-14 18:22:05[.123]" (SQL Server datetime, kept in India time) -> ISO 8601 with +05:30. */
  'datetime_ist',
] as const;
export type Transform = (typeof TRANSFORMS)[number];

export interface FieldMapping {
  column?: string;
  value?: string | number;
  transform?: Transform[];
  /** The column may be missing from the file (the field is then absent). */
  optional?: boolean;
  /** After the transforms, the source's words for Tillpoint's ({"SUCCESS": "succeeded"}); any other word is refused. */
  values?: Record<string, string>;
}

export interface Mapping {
  name: string;
  kind: ImportKind;
  format: FileFormat;
  description?: string;
  fields: Record<string, FieldMapping>;
}

const bad = (problem: string) =>
  new AppError('validation_failed', `The mapping is not valid: ${problem}`, [{ field: 'mapping', problem }]);

/** Checks a mapping's shape; anything unknown is refused, never ignored. */
export function parseMapping(raw: unknown, name: string): Mapping {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('must be a JSON object');
  const m = raw as Record<string, unknown>;
  for (const k of Object.keys(m))
    if (!['kind', 'format', 'description', 'fields', 'name'].includes(k)) throw bad(`unknown key "${k.slice(0, 40)}"`);
  if (!isImportKind(m.kind)) throw bad(`"kind" must be one of ${IMPORT_KINDS.join(', ')}`);
  const format = m.format ?? 'csv';
  if (format !== 'csv' && format !== 'jsonl') throw bad('"format" must be csv or jsonl');
  if (m.description !== undefined && typeof m.description !== 'string') throw bad('"description" must be a string');
  if (m.fields === null || typeof m.fields !== 'object' || Array.isArray(m.fields))
    throw bad('"fields" must be an object');
  const fields: Record<string, FieldMapping> = {};
  for (const [target, spec] of Object.entries(m.fields as Record<string, unknown>)) {
    if (!TARGET_FIELDS[m.kind].includes(target))
      throw bad(`"${target.slice(0, 40)}" is not a field of ${m.kind} (${TARGET_FIELDS[m.kind].join(', ')})`);
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
      throw bad(`fields.${target} must be an object`);
    const f = spec as Record<string, unknown>;
    for (const k of Object.keys(f))
      if (!['column', 'value', 'transform', 'optional', 'values'].includes(k))
        throw bad(`fields.${target}: unknown key "${k.slice(0, 40)}"`);
    if ((f.column === undefined) === (f.value === undefined))
      throw bad(`fields.${target} needs exactly one of "column" and "value"`);
    if (f.column !== undefined && (typeof f.column !== 'string' || f.column.length === 0 || f.column.length > 200))
      throw bad(`fields.${target}.column must be a column name`);
    if (f.value !== undefined && typeof f.value !== 'string' && typeof f.value !== 'number')
      throw bad(`fields.${target}.value must be a string or a number`);
    const transform = f.transform ?? [];
    if (!Array.isArray(transform) || transform.some((t) => !TRANSFORMS.includes(t as Transform)))
      throw bad(`fields.${target}.transform must be a list of ${TRANSFORMS.join(', ')}`);
    if (f.optional !== undefined && typeof f.optional !== 'boolean')
      throw bad(`fields.${target}.optional must be true or false`);
    if (
      f.values !== undefined &&
      (f.values === null ||
        typeof f.values !== 'object' ||
        Array.isArray(f.values) ||
        Object.keys(f.values).length === 0 ||
        Object.values(f.values).some((v) => typeof v !== 'string'))
    )
      throw bad(`fields.${target}.values must be an object of source words to Tillpoint's`);
    fields[target] = {
      column: f.column as string | undefined,
      value: f.value as string | number | undefined,
      transform: transform as Transform[],
      optional: f.optional === true,
      ...(f.values !== undefined ? { values: { ...(f.values as Record<string, string>) } } : {}),
    };
  }
  if (!fields.external_ref) throw bad('every kind needs an "external_ref" field (the source system\'s own key)');
  return { name, kind: m.kind, format, description: m.description as string | undefined, fields };
}

/** The shipped mapping for Tillpoint's own layout of this kind and format. */
export const defaultMappingName = (kind: ImportKind, format: FileFormat) =>
  format === 'jsonl' ? `tillpoint-${kind}-jsonl` : `tillpoint-${kind}`;

/** Columns the mapping needs that a CSV header lacks (checked once, before any row). */
export function missingColumns(m: Mapping, header: Iterable<string>): string[] {
  const have = new Set(header);
  return Object.values(m.fields).flatMap((f) =>
    f.column !== undefined && !f.optional && !have.has(f.column) ? [f.column] : [],
  );
}

/** The mapping with some fields set to constants (`--set program_id=prg_…`). */
export function withConstants(m: Mapping, constants: Record<string, string>): Mapping {
  const fields = { ...m.fields };
  for (const [k, v] of Object.entries(constants)) {
    if (!TARGET_FIELDS[m.kind].includes(k))
      throw bad(`"${k.slice(0, 40)}" is not a field of ${m.kind} (${TARGET_FIELDS[m.kind].join(', ')})`);
    fields[k] = { value: v };
  }
  return { ...m, fields };
}

export const MAPPINGS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'mappings');

/** The mappings that ship with the project, by name (file name without .json). */
export function shippedMappings(): string[] {
  return existsSync(MAPPINGS_DIR)
    ? readdirSync(MAPPINGS_DIR)
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -5))
        .sort()
    : [];
}

/** A mapping by shipped name or by path. */
export function loadMapping(nameOrPath: string): Mapping {
  const shipped = join(MAPPINGS_DIR, `${nameOrPath}.json`);
  const path = /^[a-z0-9-]+$/.test(nameOrPath) && existsSync(shipped) ? shipped : nameOrPath;
  if (!existsSync(path))
    throw new AppError('validation_failed', `No mapping "${nameOrPath}" (shipped: ${shippedMappings().join(', ')})`, [
      { field: 'mapping', problem: 'not found' },
    ]);
  let raw: unknown;
  try {
    raw = parseStrictJson(readFileSync(path, 'utf8'));
  } catch (e) {
    throw bad(`${basename(path)} is not valid JSON (${(e as Error).message.slice(0, 80)})`);
  }
  return parseMapping(raw, basename(path, '.json'));
}

export class FieldProblem extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

function applyTransform(t: Transform, v: string, field: string): string | undefined {
  switch (t) {
    case 'trim':
      return v.trim();
    case 'upper':
      return v.toUpperCase();
    case 'lower':
      return v.toLowerCase();
    case 'pad4':
      return /^[0-9]{1,4}$/.test(v) ? v.padStart(4, '0') : v;
    case 'empty_as_absent':
      return v === '' ? undefined : v;
    case 'date_dmy': {
      const m = /^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})$/.exec(v);
      if (!m) throw new FieldProblem(field, 'must be a date as DD/MM/YYYY');
      return `${m[3]}-${m[2].padStart(2, '0')}-${m[1].padStart(2, '0')}`;
    }
    case 'datetime_ist': {
      const m = /^([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,3})?)?)$/.exec(v);
      if (!m) throw new FieldProblem(field, 'must be a time as YYYY-MM-DD HH:MM:SS (India time)');
      return `${m[1]}T${m[2]}+05:30`;
    }
    case 'rupees_to_paise': {
      const m = /^(-?)([0-9]{1,13})(?:\.([0-9]*))?$/.exec(v);
      if (!m) throw new FieldProblem(field, 'must be an amount in rupees, e.g. 1234.50');
      const dec = (m[3] ?? '').replace(/0+$/, '');
      if (dec.length > 2) throw new FieldProblem(field, 'has a fraction of a paisa (more than 2 decimals)');
      return `${m[1]}${BigInt(m[2]) * 100n + BigInt(dec.padEnd(2, '0') || '0')}`;
    }
  }
}

/**
 * One source record through the mapping: the Tillpoint fields it gives (strings, or the JSON
 * value for a JSON-lines file when no transform applies). Throws FieldProblem (field and problem,
 * never the value) for a column the record does not have or a transform the value does not fit.
 */
export function applyMapping(m: Mapping, rec: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [target, f] of Object.entries(m.fields)) {
    let v: unknown;
    if (f.value !== undefined) v = f.value;
    else {
      if (!Object.hasOwn(rec, f.column!)) {
        if (m.format === 'jsonl' || f.optional) continue; // a JSON line may leave a field out
        throw new FieldProblem(target, `the file has no column "${f.column!.slice(0, 60)}"`);
      }
      v = rec[f.column!];
    }
    if (v === null) continue;
    if (f.transform && f.transform.length > 0) {
      if (typeof v === 'number') v = String(v);
      if (typeof v !== 'string') throw new FieldProblem(target, 'must be text to be transformed');
      let s: string | undefined = v;
      for (const t of f.transform) {
        if (s === undefined) break;
        s = applyTransform(t, s, target);
      }
      if (s === undefined) continue;
      v = s;
    }
    if (f.values) {
      const key = typeof v === 'number' ? String(v) : v;
      if (typeof key !== 'string' || !Object.hasOwn(f.values, key))
        throw new FieldProblem(target, `must be one of ${Object.keys(f.values).join(', ').slice(0, 200)}`);
      v = f.values[key];
    }
    out[target] = v;
  }
  return out;
}
