import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { SignedReport } from './report.ts';

// The console's "Keys and compliance" page reads these: the state of every encryption key against
// its cryptoperiod, and the PCI DSS evidence report generated live and signed (as
// `tillpoint compliance report` makes it). Both need `compliance:read` (security admins and
// auditors). Key material never leaves: a key is named by purpose, kind and version.

export interface KeyStatusSource {
  status(): Promise<{
    kek: {
      provider: string;
      kekRef: string;
      createdAt: Date | null;
      ageDays: number | null;
      cryptoperiodDays: number;
      overdue: boolean;
    };
    keys: {
      purpose: string;
      kind: string;
      version: number;
      state: string;
      created_at: string | Date;
      ageDays: number;
      cryptoperiodDays: number;
      overdue: boolean;
      rows: { field: string; rows: number }[];
    }[];
    jobs: unknown;
  }>;
}

export interface ComplianceRouteDeps {
  keys: KeyStatusSource;
  /** Gathers the facts and signs the report (src/app.ts wires the live services in). */
  report(): Promise<SignedReport>;
}

const tags = ['compliance'];
const Key = Type.Object({
  purpose: Type.String(),
  kind: Type.String(),
  version: Type.Integer(),
  state: Type.String(),
  created_at: Type.String(),
  age_days: Type.Integer(),
  cryptoperiod_days: Type.Integer(),
  overdue: Type.Boolean(),
  encrypted_rows: Type.Integer(),
});
const KeyStatus = Type.Object({
  kek: Type.Object({
    provider: Type.String(),
    ref: Type.String(),
    created_at: Type.Union([Type.String(), Type.Null()]),
    age_days: Type.Union([Type.Integer(), Type.Null()]),
    cryptoperiod_days: Type.Integer(),
    overdue: Type.Boolean(),
  }),
  keys: Type.Array(Key),
  rotation_jobs: Type.Unknown(),
});

const iso = (d: string | Date | null) => (d === null ? null : new Date(d).toISOString());

export function registerComplianceRoutes(app: FastifyInstance, deps: ComplianceRouteDeps) {
  app.get(
    '/v1/keys',
    {
      config: { permission: 'compliance:read' },
      schema: {
        tags,
        summary: 'Encryption keys: age against cryptoperiod, rows each protects, rotation progress',
        response: { 200: KeyStatus },
      },
    },
    async () => {
      const s = await deps.keys.status();
      return {
        kek: {
          provider: s.kek.provider,
          ref: s.kek.kekRef,
          created_at: iso(s.kek.createdAt),
          age_days: s.kek.ageDays === null ? null : Math.floor(s.kek.ageDays),
          cryptoperiod_days: s.kek.cryptoperiodDays,
          overdue: s.kek.overdue,
        },
        keys: s.keys.map((k) => ({
          purpose: k.purpose,
          kind: k.kind,
          version: k.version,
          state: k.state,
          created_at: iso(k.created_at)!,
          age_days: Math.floor(k.ageDays),
          cryptoperiod_days: k.cryptoperiodDays,
          overdue: k.overdue,
          encrypted_rows: k.rows.reduce((n, r) => n + r.rows, 0),
        })),
        rotation_jobs: s.jobs,
      };
    },
  );

  app.get(
    '/v1/compliance/report',
    {
      // The report names operators (MFA, last use): reading it is recorded like other personal data.
      config: { permission: 'compliance:read', audit: 'access' },
      schema: {
        tags,
        summary: 'The PCI DSS v4.0.1 evidence report, generated now and signed with the audit key',
        description:
          'Runs every automated check against this installation (the audit trail is verified in full, so this takes a moment on a large trail). Verify the result with `tillpoint compliance verify`.',
        response: { 200: Type.Object({}, { additionalProperties: true }) },
      },
    },
    async () => deps.report(),
  );
}
