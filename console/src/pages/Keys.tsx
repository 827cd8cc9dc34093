import { useEffect, useState } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { get } from '../api.ts';
import { DataTable, ErrorNote } from '../components/DataTable.tsx';
import { when } from '../format.ts';

// Keys against their cryptoperiods (PCI DSS 3.6, 3.7) and the signed PCI DSS evidence report,
// generated live by the server (`GET /v1/compliance/report`, the same report as
// `tillpoint compliance report`). Security admins and auditors only (`compliance:read`).

interface Key {
  purpose: string;
  kind: string;
  version: number;
  state: string;
  created_at: string;
  age_days: number;
  cryptoperiod_days: number;
  overdue: boolean;
  encrypted_rows: number;
}
interface KeyStatus {
  kek: {
    provider: string;
    ref: string;
    created_at: string | null;
    age_days: number | null;
    cryptoperiod_days: number;
    overdue: boolean;
  };
  keys: Key[];
}
interface Check {
  id: string;
  requirement: string;
  title: string;
  kind: string;
  status: string;
  summary: string;
  evidence_sha256: string;
}
interface SignedReport {
  report: {
    generated_at: string;
    summary: {
      ok: boolean;
      passed: number;
      failed: number;
      errors: number;
      manual: number;
      not_configured: number;
      not_applicable: number;
    };
    results: Check[];
  };
  signature: { key_id: string; public_key: string };
}

const keyCol = createColumnHelper<Key>();
const keyColumns = [
  keyCol.accessor('purpose', { header: 'Purpose' }),
  keyCol.accessor('kind', { header: 'Kind' }),
  keyCol.accessor('version', { header: 'Version' }),
  keyCol.accessor('state', { header: 'State' }),
  keyCol.accessor('created_at', { header: 'Created', cell: (c) => when(c.getValue()) }),
  keyCol.accessor((k) => `${k.age_days} / ${k.cryptoperiod_days} days`, { id: 'age', header: 'Age / cryptoperiod' }),
  keyCol.accessor('encrypted_rows', { header: 'Rows protected' }),
  keyCol.accessor('overdue', {
    header: 'Rotation',
    cell: (c) => (c.getValue() ? <strong className="error">past cryptoperiod</strong> : 'in date'),
  }),
];

const checkCol = createColumnHelper<Check>();
const checkColumns = [
  checkCol.accessor('requirement', { header: 'Requirement' }),
  checkCol.accessor('title', { header: 'Check' }),
  checkCol.accessor('kind', { header: 'Kind' }),
  checkCol.accessor('status', {
    header: 'Status',
    cell: (c) => <span className={`status status-${c.getValue()}`}>{c.getValue().replace('_', ' ')}</span>,
  }),
  checkCol.accessor('summary', { header: 'Summary' }),
];

export default function Keys() {
  const keys = useQuery({ queryKey: ['keys'], queryFn: () => get<KeyStatus>('/v1/keys'), refetchInterval: 60_000 });
  const report = useMutation({ mutationFn: () => get<SignedReport>('/v1/compliance/report') });
  const [download, setDownload] = useState<string>();
  useEffect(() => {
    if (!report.data) return;
    const url = URL.createObjectURL(new Blob([JSON.stringify(report.data, null, 2)], { type: 'application/json' }));
    setDownload(url);
    return () => URL.revokeObjectURL(url);
  }, [report.data]);
  const k = keys.data?.kek;
  const s = report.data?.report.summary;
  return (
    <section aria-labelledby="kc">
      <h1 id="kc">Keys and compliance</h1>
      <h2>Encryption keys</h2>
      <ErrorNote error={keys.error} />
      {k && (
        <p className="card" data-testid="kek">
          Key-encryption key: <span className="mono">{k.provider}</span> <span className="mono">{k.ref}</span>,{' '}
          {k.age_days === null ? 'age not reported by the key manager' : `${k.age_days} of ${k.cryptoperiod_days} days`}
          {k.overdue ? <strong className="error"> — past its cryptoperiod: rotate it</strong> : ' — in date'}
        </p>
      )}
      <DataTable data={keys.data?.keys ?? []} columns={keyColumns} caption="Data keys" />
      <p className="muted small">
        Rotate with <code>tillpoint keys rotate</code>; the worker re-encrypts every row under the new version.
      </p>

      <h2>PCI DSS v4.0.1 evidence report</h2>
      <p>
        <button type="button" onClick={() => report.mutate()} disabled={report.isPending}>
          {report.isPending ? 'Generating…' : 'Generate report'}
        </button>
      </p>
      <ErrorNote error={report.error} />
      {report.data && s && (
        <>
          <p role="status" data-testid="report-summary" className={s.ok ? 'ok' : 'error'}>
            {s.ok ? 'Every automated check passed.' : 'An automated check failed or could not run.'} {s.passed} passed,{' '}
            {s.failed} failed, {s.errors} errors, {s.manual} manual, {s.not_configured} not configured,{' '}
            {s.not_applicable} not applicable. Generated {when(report.data.report.generated_at)}, signed by{' '}
            <span className="mono">{report.data.signature.key_id}</span>.
          </p>
          {download && (
            <p>
              <a href={download} download={`tillpoint-pci-dss-${report.data.report.generated_at}.json`}>
                Download the signed report (JSON)
              </a>{' '}
              — check it with <code>tillpoint compliance verify FILE</code>.
            </p>
          )}
          <div className="wrap-cells">
            <DataTable data={report.data.report.results} columns={checkColumns} caption="Checks" />
          </div>
        </>
      )}
    </section>
  );
}
