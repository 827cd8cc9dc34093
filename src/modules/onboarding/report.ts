import type { ImportReport, ReconciliationLine } from './onboarding.service.ts';

// The import's report as people read it (the command line) and as a spreadsheet (the
// reconciliation per merchant). Counts, ids, line numbers and reasons only: never a value from
// the file.

const n = (v: number) => v.toLocaleString('en-IN');
const rupees = (paise: number) =>
  `₹${(Math.trunc(paise / 100)).toLocaleString('en-IN')}.${String(Math.abs(paise) % 100).padStart(2, '0')}`;

export function formatReport(
  r: ImportReport,
  rejects: { line: number; field: string | null; reason: string }[],
): string {
  const out: string[] = [];
  const what = r.dry_run ? 'dry run (nothing was written)' : r.status;
  out.push(
    `import ${r.import_id}: ${r.kind} from ${r.file_bytes} bytes (sha256 ${r.file_sha256}), mapping ${r.mapping}: ${what}`,
  );
  if (r.resumed_from_line > 0) out.push(`  resumed after line ${r.resumed_from_line}`);
  out.push(
    `  rows ${n(r.rows)}: ${r.dry_run ? 'would create' : 'created'} ${n(r.created)}, already imported ${n(r.unchanged)}, rejected ${n(r.rejected)}`,
  );
  if (r.error) out.push(`  stopped: ${r.error}`);
  if (rejects.length > 0) {
    out.push('  rejected rows:');
    for (const x of rejects) out.push(`    line ${x.line}${x.field ? ` (${x.field})` : ''}: ${x.reason}`);
    if (r.rejected > rejects.length)
      out.push(`    … and ${n(r.rejected - rejects.length)} more (tillpoint import rejects ${r.import_id})`);
  }
  const rec = r.reconciliation;
  if (rec) {
    const t = rec.totals;
    out.push(
      `  reconciliation: ${n(rec.merchants)} merchants, ${n(rec.matched)} match, ${n(rec.merchants - rec.matched)} differ`,
    );
    out.push(`    rows   source ${n(t.source_rows)}  tillpoint ${n(t.tillpoint_rows)}`);
    if (r.kind === 'reward-balances' || r.kind === 'payments') {
      out.push(`    points source ${n(t.source_points)}  tillpoint ${n(t.tillpoint_points)}`);
      // Payments: succeeded payments less succeeded refunds; Tillpoint's side is the ledger's legacy_settled accounts.
      out.push(
        `    ${r.kind === 'payments' ? 'money ' : 'value '} source ${rupees(t.source_value_paise)}  tillpoint ${rupees(t.tillpoint_value_paise)}`,
      );
    }
    for (const m of rec.mismatches.slice(0, 20))
      out.push(
        `    ${m.merchant_id}: rows ${m.source_rows}/${m.tillpoint_rows}` +
          (r.kind === 'reward-balances' || r.kind === 'payments'
            ? `, points ${m.source_points}/${m.tillpoint_points}, paise ${m.source_value_paise}/${m.tillpoint_value_paise}`
            : '') +
          ' (source/tillpoint)',
      );
  }
  out.push(`  took ${(r.duration_ms / 1000).toFixed(1)} s`);
  return `${out.join('\n')}\n`;
}

export function reconciliationCsv(lines: ReconciliationLine[]): string {
  const head =
    'merchant_id,source_rows,tillpoint_rows,source_points,tillpoint_points,source_value_paise,tillpoint_value_paise,match';
  const body = lines.map((l) =>
    [
      l.merchant_id,
      l.source_rows,
      l.tillpoint_rows,
      l.source_points,
      l.tillpoint_points,
      l.source_value_paise,
      l.tillpoint_value_paise,
      l.source_rows === l.tillpoint_rows &&
        l.source_points === l.tillpoint_points &&
        l.source_value_paise === l.tillpoint_value_paise,
    ].join(','),
  );
  return `${[head, ...body].join('\n')}\n`;
}
