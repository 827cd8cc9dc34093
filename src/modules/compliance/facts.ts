import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Config } from '../../platform/config.ts';
import type { Db } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import { findSensitiveAuthData } from '../vault/index.ts';
import type { ComplianceFacts, KeyFact, OperatorFact } from './checks.ts';

// Gathers the facts the checks decide on, from the live system: configuration, the database,
// and the identity, vault and audit services (passed in, so this module reaches them only
// through their public faces). Numbers are whole (days, seconds): the report's canonical JSON
// (the signed bytes) allows integers only.

/** The development default of the simulated banks' HMAC secret (modules/banks/banks.settings.ts). */
const DEV_BANK_SECRET = 'dev-only-simulator-secret';

/** One sample of each kind of sensitive authentication data the guard must refuse (PCI DSS 3.3.1). */
const SAD_SAMPLES: Record<string, unknown> = {
  cvv: { card: { cvv: '123' } },
  cvc2: { cvc2: '456' },
  pin_block: { pin_block: '0412AC89ABCDEF01' },
  track2: { track2: ';4111111111111111=25121010000000000000?' },
};

export interface FactSources {
  config: Config;
  db: Db;
  clock: Clock;
  identity: {
    accessReview(): Promise<{
      operators: Array<{
        id: string;
        email: string;
        status: string;
        mfa_enrolled: boolean;
        days_since_use: number | null;
        roles: string[];
      }>;
    }>;
  };
  vault:
    | {
        status(): Promise<{
          kek: { ageDays: number | null; cryptoperiodDays: number; overdue: boolean };
          keys: Array<{
            purpose: string;
            kind: string;
            version: number;
            state: string;
            ageDays: number;
            cryptoperiodDays: number;
            overdue: boolean;
          }>;
        }>;
      }
    | { error: string };
  audit: {
    verify(): Promise<{
      ok: boolean;
      records_checked: number;
      heads_checked: number;
      unsealed: number;
      first?: { message: string };
    }>;
    latestHead(): Promise<{ tree_size: number; timestamp: string; key_id: string } | undefined>;
  };
  /** Whether the API is reached only through a TLS-terminating gateway (COMPLIANCE_TLS_AT_GATEWAY=true). */
  tlsAtGateway?: boolean;
  /** Run `npm audit` (needs the registry); off in tests. */
  npmAudit?: boolean;
  /** Whether the secrets named in the config came from files under the data dir (development). */
  keysFromDataDir?: string[];
  /** Evidence read from AWS (awsEvidence.ts), when the report was asked to read it. */
  aws?: ComplianceFacts['aws'];
}

const perHour = (perSecond: number) => Math.round(perSecond * 3600);

export async function gatherFacts(s: FactSources): Promise<ComplianceFacts> {
  const { config, db, clock } = s;
  const now = clock.now();

  const review = await s.identity.accessReview();
  const operators: OperatorFact[] = review.operators.map((o) => ({
    id: o.id,
    email_domain: o.email.split('@')[1] ?? '',
    status: o.status,
    mfa_enrolled: o.mfa_enrolled,
    days_since_use: o.days_since_use,
    roles: o.roles,
  }));

  let keys: ComplianceFacts['keys'];
  if ('error' in s.vault) keys = { error: s.vault.error };
  else {
    try {
      const st = await s.vault.status();
      keys = {
        kek: {
          age_days: st.kek.ageDays === null ? null : Math.floor(st.kek.ageDays),
          cryptoperiod_days: st.kek.cryptoperiodDays,
          overdue: st.kek.overdue,
        },
        versions: st.keys.map(
          (k): KeyFact => ({
            purpose: k.purpose,
            kind: k.kind,
            version: k.version,
            state: k.state,
            age_days: Math.floor(k.ageDays),
            cryptoperiod_days: k.cryptoperiodDays,
            overdue: k.overdue,
          }),
        ),
      };
    } catch (e) {
      keys = { error: (e as Error).message };
    }
  }

  let verify: ComplianceFacts['audit']['verify'];
  try {
    const v = await s.audit.verify();
    verify = {
      ok: v.ok,
      records_checked: v.records_checked,
      heads_checked: v.heads_checked,
      unsealed: v.unsealed,
      ...(v.first ? { first_problem: v.first.message } : {}),
    };
  } catch (e) {
    verify = { error: (e as Error).message };
  }
  const head = (await s.audit.latestHead()) ?? null;
  const exports = (
    await db.query<{ n: number; last: Date | null }>(
      `SELECT count(*)::int AS n, max(exported_at) AS last FROM audit.exports`,
    )
  ).rows[0];

  // Columns whose names say they hold sensitive authentication data: there must be none.
  const suspicious = (
    await db.query<{ c: string }>(
      `SELECT table_schema || '.' || table_name || '.' || column_name AS c FROM information_schema.columns
      WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
        AND (column_name ~* '(^|_)(cvv|cvc|cvc2|cvv2|cid|pin|pin_block|pinblock|track1|track2|track_data|magstripe)($|_)')`,
    )
  ).rows.map((r) => r.c);
  const refused: string[] = [];
  const missed: string[] = [];
  for (const [kind, sample] of Object.entries(SAD_SAMPLES))
    (findSensitiveAuthData(sample) ? refused : missed).push(kind);

  const defaults = config.banks.filter((b) => b.secret === DEV_BANK_SECRET).map((b) => `BANKS[${b.code}].secret`);

  let waf: ComplianceFacts['waf'] = { events_file: null, blocked: null, detected: null };
  if (config.securityEventsFile) {
    let blocked = 0;
    let detected = 0;
    if (existsSync(config.securityEventsFile)) {
      for (const line of readFileSync(config.securityEventsFile, 'utf8').split('\n')) {
        if (/"action"\s*:\s*"blocked"/.test(line)) blocked++;
        else if (/"action"\s*:\s*"detected"/.test(line)) detected++;
      }
    }
    waf = { events_file: config.securityEventsFile, blocked, detected };
  }

  let npmAudit: ComplianceFacts['npm_audit'] = {
    ran: false,
    reason: 'not run: pass --npm-audit (it asks the npm registry)',
  };
  if (s.npmAudit) {
    const r = spawnSync('npm', ['audit', '--json', '--omit=dev'], { encoding: 'utf8', timeout: 120_000 });
    try {
      const counts = JSON.parse(r.stdout).metadata?.vulnerabilities as Record<string, number> | undefined;
      npmAudit = counts ? { ran: true, counts } : { ran: false, reason: 'npm audit gave no counts' };
    } catch {
      npmAudit = { ran: false, reason: `npm audit failed: ${(r.stderr || '').trim().slice(0, 200)}` };
    }
  }

  const rl = config.rateLimits;
  return {
    mode: config.mode,
    tls: { mode: config.tls.mode, min_version: config.tls.minVersion, behind_gateway_tls: Boolean(s.tlsAtGateway) },
    database_tls: config.databaseUrl ? /sslmode=verify-full/.test(config.databaseUrl) : null,
    default_secrets: defaults,
    keys_from_data_dir: s.keysFromDataDir ?? [],
    operators,
    inactive_days_limit: config.identity.inactiveDays,
    identity: {
      session_idle_minutes: config.identity.sessionIdleMinutes,
      lockout_threshold: config.identity.lockoutThreshold,
      lockout_minutes: config.identity.lockoutMinutes,
    },
    keys,
    audit: {
      verify,
      latest_head: head ? { tree_size: head.tree_size, timestamp: head.timestamp, key_id: head.key_id } : null,
      head_age_seconds: head ? Math.round((now.getTime() - Date.parse(head.timestamp)) / 1000) : null,
      sign_interval_seconds: config.audit.signIntervalSeconds,
      export_target: config.audit.export.target,
      exports: Number(exports.n),
      last_export_at: exports.last ? new Date(exports.last).toISOString() : null,
      retention_months: config.audit.retentionMonths,
      online_months: config.audit.onlineMonths,
    },
    sensitive_data: { samples_refused: refused, samples_missed: missed, suspicious_columns: suspicious },
    rate_limits: {
      enabled: rl.enabled,
      signin: `${perHour(rl.limits.signin_ip.ratePerSecond)}/h per IP, ${perHour(rl.limits.signin_account.ratePerSecond)}/h per account`,
      mfa: `${perHour(rl.limits.mfa_account.ratePerSecond)}/h per account`,
    },
    waf,
    npm_audit: npmAudit,
    aws: s.aws ?? { configured: false },
  };
}
