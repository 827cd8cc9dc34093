import { flexRender, getCoreRowModel, useReactTable, type ColumnDef } from '@tanstack/react-table';

// Lists: TanStack Table for column definitions and rendering; paging is the API's cursor.

export function DataTable<T>({
  data,
  columns,
  caption,
  empty = 'Nothing to show.',
}: {
  data: T[];
  columns: ColumnDef<T, any>[];
  caption: string;
  empty?: string;
}) {
  const table = useReactTable({ data, columns, getCoreRowModel: getCoreRowModel() });
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label={caption}>
      <table>
        <caption className="sr-only">{caption}</caption>
        <thead>
          {table.getHeaderGroups().map((hg) => (
            <tr key={hg.id}>
              {hg.headers.map((h) => (
                <th key={h.id} scope="col">
                  {flexRender(h.column.columnDef.header, h.getContext())}
                </th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.length === 0 ? (
            <tr>
              <td colSpan={columns.length} className="muted">
                {empty}
              </td>
            </tr>
          ) : (
            table.getRowModel().rows.map((r) => (
              <tr key={r.id}>
                {r.getVisibleCells().map((c) => (
                  <td key={c.id} data-label={String(c.column.columnDef.header ?? '')}>
                    {flexRender(c.column.columnDef.cell, c.getContext())}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p role="alert" className="error">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}

/** The "load more" button under a cursor-paged list (TanStack Query's infinite query); nothing when no page is left. */
export function LoadMore({
  q,
  what,
}: {
  q: { hasNextPage: boolean; isFetchingNextPage: boolean; fetchNextPage: () => unknown };
  what?: string;
}) {
  if (!q.hasNextPage) return null;
  return (
    <button type="button" className="secondary" onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage}>
      {what ? `Load more ${what}` : 'Load more'}
    </button>
  );
}
