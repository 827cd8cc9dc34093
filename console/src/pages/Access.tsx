import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { createColumnHelper } from '@tanstack/react-table';
import { get, post, type Operator, type Page } from '../api.ts';
import { DataTable, ErrorNote } from '../components/DataTable.tsx';
import { when } from '../format.ts';
import { useCan, useSession } from '../session.tsx';
import { isApprovalRequired, type ApprovalRequired } from './Approvals.tsx';

// Operators and their roles, and API keys. Secrets (a new operator's temporary password, a new
// key) are shown once, right after creation, and never again: the server keeps only digests.

interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  merchant_id: string | null;
  permissions: string[];
  status: string;
  expires_at: string | null;
  last_used_at: string | null;
  created_at: string;
}
const ROLES = ['viewer', 'support', 'cashier', 'refunds', 'merchant-admin', 'security-admin', 'auditor'];
const KEY_PERMISSIONS = [
  'merchants:read',
  'merchants:write',
  'terminals:read',
  'terminals:write',
  'payments:read',
  'payments:write',
  'refunds:write',
  'rewards:read',
  'rewards:write',
  'vault:tokenize',
];

const opCol = createColumnHelper<Operator>();
const keyCol = createColumnHelper<ApiKey>();

export function Access() {
  const can = useCan();
  const me = useSession().operator;
  return (
    <section aria-labelledby="ac">
      <h1 id="ac">Access</h1>
      {can('operators:read') && <Operators />}
      {can('api_keys:read') && <ApiKeys />}
      {can('operators:read') && me.merchant_id === null && <AccessReview />}
    </section>
  );
}

function Operators() {
  const can = useCan();
  const me = useSession().operator;
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ['operators'], queryFn: () => get<Page<Operator>>('/v1/operators?limit=200') });
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [roles, setRoles] = useState<string[]>(['viewer']);
  const create = useMutation({
    mutationFn: () =>
      post<{ operator: Operator; temporary_password?: string }>('/v1/operators', {
        email,
        name,
        roles,
        ...(me.merchant_id ? { merchant_id: me.merchant_id } : {}),
      }),
    onSuccess: () => {
      setEmail('');
      setName('');
      void qc.invalidateQueries({ queryKey: ['operators'] });
    },
  });
  const columns = [
    opCol.accessor('name', { header: 'Name' }),
    opCol.accessor('email', { header: 'Email' }),
    opCol.accessor('roles', { header: 'Roles', cell: (c) => c.getValue().join(', ') }),
    opCol.accessor('status', {
      header: 'Status',
      cell: (c) => (
        <>
          {c.getValue()}
          {c.row.original.locked_until ? ' (locked)' : ''}
        </>
      ),
    }),
    opCol.accessor('mfa_enrolled', { header: 'MFA', cell: (c) => (c.getValue() ? 'enrolled' : 'not yet') }),
    opCol.accessor('last_login_at', { header: 'Last sign-in', cell: (c) => when(c.getValue()) }),
    ...(can('operators:write')
      ? [
          opCol.display({
            id: 'mfa-reset',
            header: 'Second factor',
            cell: (c) =>
              c.row.original.id !== me.id && c.row.original.mfa_enrolled && c.row.original.status === 'active' ? (
                <ResetMfa operator={c.row.original} />
              ) : null,
          }),
        ]
      : []),
  ];
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <>
      <h2>Operators</h2>
      <ErrorNote error={list.error} />
      <DataTable data={list.data?.data ?? []} columns={columns} caption="Operators" />
      {can('operators:write') && (
        <form className="card" onSubmit={submit} aria-label="New operator">
          <h3>New operator</h3>
          <label>
            Email
            <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <label>
            Name
            <input required value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <fieldset>
            <legend>Roles</legend>
            {ROLES.map((r) => (
              <label key={r} className="check">
                <input
                  type="checkbox"
                  checked={roles.includes(r)}
                  onChange={(e) => setRoles(e.target.checked ? [...roles, r] : roles.filter((x) => x !== r))}
                />
                {r}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={create.isPending || roles.length === 0}>
            Create
          </button>
          <ErrorNote error={create.error} />
          {create.data?.temporary_password && (
            <p role="status" className="secret">
              Temporary password for {create.data.operator.email} (shown once; they must change it at first sign-in):{' '}
              <code data-testid="temp-password">{create.data.temporary_password}</code>
            </p>
          )}
        </form>
      )}
    </>
  );
}

/** Files a request: another administrator approves it on the Approvals page (four eyes). */
function ResetMfa({ operator }: { operator: Operator }) {
  const reset = useMutation({
    mutationFn: () => post<ApprovalRequired>(`/v1/operators/${operator.id}/reset-mfa`),
  });
  if (reset.data && isApprovalRequired(reset.data))
    return (
      <span role="status" className="ok" data-testid={`mfa-reset-${operator.id}`}>
        Requested: waits for a second administrator
      </span>
    );
  return (
    <>
      <button
        type="button"
        disabled={reset.isPending}
        onClick={() => reset.mutate()}
        aria-label={`Reset MFA of ${operator.name}`}
      >
        Reset MFA
      </button>
      <ErrorNote error={reset.error} />
    </>
  );
}

function ApiKeys() {
  const can = useCan();
  const me = useSession().operator;
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ['api-keys'], queryFn: () => get<Page<ApiKey>>('/v1/api-keys?limit=200') });
  const [name, setName] = useState('');
  const [perms, setPerms] = useState<string[]>(['payments:read']);
  const create = useMutation({
    mutationFn: () =>
      post<ApiKey & { key: string }>('/v1/api-keys', {
        name,
        permissions: perms,
        ...(me.merchant_id ? { merchant_id: me.merchant_id } : {}),
      }),
    onSuccess: () => {
      setName('');
      void qc.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => post(`/v1/api-keys/${id}/revoke`, { reason: 'revoked from the console' }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['api-keys'] }),
  });
  const columns = [
    keyCol.accessor('name', { header: 'Name' }),
    keyCol.accessor('prefix', { header: 'Prefix', cell: (c) => <span className="mono">{c.getValue()}…</span> }),
    keyCol.accessor('merchant_id', { header: 'Scope', cell: (c) => c.getValue() ?? 'platform' }),
    keyCol.accessor('permissions', { header: 'Permissions', cell: (c) => c.getValue().join(', ') }),
    keyCol.accessor('status', { header: 'Status' }),
    keyCol.accessor('expires_at', { header: 'Expires', cell: (c) => when(c.getValue()) }),
    keyCol.accessor('last_used_at', { header: 'Last used', cell: (c) => when(c.getValue()) }),
    ...(can('api_keys:write')
      ? [
          keyCol.display({
            id: 'revoke',
            header: 'Actions',
            cell: (c) =>
              c.row.original.status === 'active' ? (
                <button type="button" className="secondary small-btn" onClick={() => revoke.mutate(c.row.original.id)}>
                  Revoke
                </button>
              ) : null,
          }),
        ]
      : []),
  ];
  return (
    <>
      <h2>API keys</h2>
      <ErrorNote error={list.error ?? revoke.error} />
      <DataTable data={list.data?.data ?? []} columns={columns} caption="API keys" />
      {can('api_keys:write') && (
        <form
          className="card"
          onSubmit={(e) => {
            e.preventDefault();
            create.mutate();
          }}
          aria-label="New API key"
        >
          <h3>New API key</h3>
          <label>
            Name
            <input required value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <fieldset>
            <legend>Permissions</legend>
            {KEY_PERMISSIONS.map((p) => (
              <label key={p} className="check">
                <input
                  type="checkbox"
                  checked={perms.includes(p)}
                  onChange={(e) => setPerms(e.target.checked ? [...perms, p] : perms.filter((x) => x !== p))}
                />
                {p}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={create.isPending || perms.length === 0}>
            Create key
          </button>
          <ErrorNote error={create.error} />
          {create.data && (
            <p role="status" className="secret">
              The key (shown once; only its digest is kept): <code data-testid="new-key">{create.data.key}</code>
            </p>
          )}
        </form>
      )}
    </>
  );
}

interface ReviewRow {
  account: string;
  scope: string;
  grants: string;
  status: string;
  mfa: string;
  last_used_at: string | null;
  days_since_use: number | null;
}
interface Review {
  generated_at: string;
  operators: (Operator & { last_used_at: string | null; days_since_use: number | null; permissions: string[] })[];
  api_keys: (Omit<ApiKey, 'prefix' | 'status'> & { days_since_use: number | null })[];
}
/** Accounts unused this long are disabled by the worker (PCI DSS 8.2.6); the review flags them first. */
const STALE_DAYS = 90;
const reviewCol = createColumnHelper<ReviewRow>();
const reviewColumns = [
  reviewCol.accessor('account', { header: 'Account' }),
  reviewCol.accessor('scope', { header: 'Scope' }),
  reviewCol.accessor('grants', { header: 'Roles / permissions' }),
  reviewCol.accessor('status', { header: 'Status' }),
  reviewCol.accessor('mfa', { header: 'MFA' }),
  reviewCol.accessor('last_used_at', { header: 'Last used', cell: (c) => when(c.getValue()) }),
  reviewCol.accessor('days_since_use', {
    header: 'Days unused',
    cell: (c) => {
      const d = c.getValue();
      return d !== null && d >= STALE_DAYS ? <strong className="error">{d} (stale)</strong> : (d ?? '—');
    },
  }),
];

/** The six-monthly access review (PCI DSS 7.2.4): every account and key, with last use. */
function AccessReview() {
  const review = useQuery({ queryKey: ['access-review'], queryFn: () => get<Review>('/v1/access-review') });
  const r = review.data;
  const rows: ReviewRow[] = r
    ? [
        ...r.operators.map((o) => ({
          account: o.email,
          scope: o.merchant_id ?? 'platform',
          grants: o.roles.join(', '),
          status: o.locked_until ? 'locked' : o.status,
          mfa: o.mfa_enrolled ? 'yes' : 'no',
          last_used_at: o.last_used_at,
          days_since_use: o.days_since_use,
        })),
        ...r.api_keys.map((k) => ({
          account: `API key ${k.name}`,
          scope: k.merchant_id ?? 'platform',
          grants: k.permissions.join(', '),
          status: k.expires_at ? `expires ${k.expires_at.slice(0, 10)}` : 'active',
          mfa: '—',
          last_used_at: k.last_used_at,
          days_since_use: k.days_since_use,
        })),
      ]
    : [];
  return (
    <>
      <h2>Access review</h2>
      <p className="muted small">
        Every account and active API key with what it may do and when it was last used, for the six-monthly review (PCI
        DSS 7.2.4). Reading it is recorded in the audit trail.
      </p>
      <ErrorNote error={review.error} />
      {r && (
        <p className="small" data-testid="access-review-summary">
          {r.operators.length} operator accounts, {r.api_keys.length} active API keys, generated {when(r.generated_at)}.
        </p>
      )}
      <div className="wrap-cells">
        <DataTable data={rows} columns={reviewColumns} caption="Access review" />
      </div>
    </>
  );
}
