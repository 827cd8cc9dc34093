import { Type, type Static } from '@sinclair/typebox';
import { AppError } from '../platform/errors.ts';

// Cursor pagination over time-sortable ids: the cursor is the last id seen, opaque to clients.
// Lists are newest first; `id < cursor` continues where the last page stopped, stable under inserts.

export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
};

export const pageOf = <T extends import('@sinclair/typebox').TSchema>(item: T) =>
  Type.Object({ data: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  try {
    const id = Buffer.from(cursor, 'base64url').toString('utf8');
    if (/^[a-z]{3}_[0-9a-f]{32}$/.test(id)) return id;
  } catch {
    /* fall through */
  }
  throw new AppError('invalid_cursor', 'The cursor is not one this API issued');
}

export const encodeCursor = (id: string) => Buffer.from(id, 'utf8').toString('base64url');

/** Given rows fetched with LIMIT limit+1, returns the page and the next cursor. */
export function page<T extends { id: string }>(rows: T[], limit: number): { data: T[]; next_cursor: string | null } {
  const data = rows.slice(0, limit);
  return { data, next_cursor: rows.length > limit ? encodeCursor(data[data.length - 1].id) : null };
}

export type PageQueryT = Static<ReturnType<typeof Type.Object<typeof PageQuery>>>;
