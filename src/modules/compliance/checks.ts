import { createHash } from 'node:crypto';
import type { AwsEvidence } from './awsEvidence.ts';
import { canonicalJson } from '../audit/index.ts';

// PCI DSS v4.0.1 checks as pure functions of facts gathered from the live system (facts.ts):
// every check is decided here, from data, so a test can flip one fact and see its row fail.
// Requirements the software cannot speak to are listed as manual (with what to attach) or
// not applicable; a check that could not look never says pass.

export type CheckKind = 'automated' | 'manual' | 'not_applicable';
export type CheckStatus = 'pass' | 'fail' | 'manual' | 'not_applicable' | 'not_configured' | 'error';

export interface CheckResult {
  id: string;
  requirement: string;
  title: string;
  kind: CheckKind;
  status: CheckStatus;
  summary: string;
  /** What was looked at; what an assessor reads. */
  evidence: unknown;
  /** SHA-256 of the canonical JSON of `evidence`. */
  evidence_sha256: string;
}

export interface OperatorFact {
  id: string;
  email_domain: string;
  status: string;
  mfa_enrolled: boolean;
  days_since_use: number | null;
  roles: string[];
}

export interface KeyFact {
  purpose: string;
  kind: string;
  version: number;
  state: string;
  age_days: number;
  cryptoperiod_days: number;
  overdue: boolean;
}

/** Everything the checks read. Gathered by facts.ts; built by hand in tests. */
export interface ComplianceFacts {
  mode: string;
  tls: { mode: string; min_version: string; behind_gateway_tls: boolean };
  database_tls: boolean | null;
  default_secrets: string[];
  keys_from_data_dir: string[];
  operators: OperatorFact[];
  inactive_days_limit: number;
  identity: { session_idle_minutes: number; lockout_threshold: number; lockout_minutes: number };
  keys:
    | { kek: { age_days: number | null; cryptoperiod_days: number; overdue: boolean }; versions: KeyFact[] }
    | { error: string };
  audit: {
    verify:
      | { ok: boolean; records_checked: number; heads_checked: number; unsealed: number; first_problem?: string }
      | { error: string };
    latest_head: { tree_size: number; timestamp: string; key_id: string } | null;
    head_age_seconds: number | null;
    sign_interval_seconds: number;
    export_target: string;
    exports: number;
    last_export_at: string | null;
    retention_months: number;
    online_months: number;
  };
  sensitive_data: { samples_refused: string[]; samples_missed: string[]; suspicious_columns: string[] };
  rate_limits: { enabled: boolean; signin: string; mfa: string };
  waf: { events_file: string | null; blocked: number | null; detected: number | null };
  npm_audit: { ran: false; reason: string } | { ran: true; counts: Record<string, number> };
  aws: { configured: false; reason?: string } | AwsEvidence;
}

export const evidenceHash = (evidence: unknown) =>
  createHash('sha256')
    .update(canonicalJson(evidence ?? null))
    .digest('hex');

function row(
  id: string,
  requirement: string,
  title: string,
  kind: CheckKind,
  status: CheckStatus,
  summary: string,
  evidence: unknown,
): CheckResult {
  return {
    id,
    requirement,
    title,
    kind,
    status,
    summary,
    evidence: evidence ?? null,
    evidence_sha256: evidenceHash(evidence ?? null),
  };
}
const auto = (id: string, req: string, title: string, ok: boolean, pass: string, fail: string, evidence: unknown) =>
  row(id, req, title, 'automated', ok ? 'pass' : 'fail', ok ? pass : fail, evidence);
const manual = (id: string, req: string, title: string, attach: string) =>
  row(id, req, title, 'manual', 'manual', `Attach: ${attach}`, null);

const AWS_TITLE = 'Cloud evidence (AWS Config rules, CloudTrail, S3 Object Lock, Inspector findings)';
/** The audit trail's retention (10.5.1): 12 months, the WORM bucket's default retention at least that. */
const MIN_LOCK_DAYS = 365;

/** The rows read from AWS (awsEvidence.ts); one "not configured" row when the report did not read AWS. */
export function awsChecks(aws: ComplianceFacts['aws']): CheckResult[] {
  if (!aws.configured)
    return [
      row(
        '12.aws-evidence',
        '10.3.3 / 11.3 / 12',
        AWS_TITLE,
        'automated',
        'not_configured',
        `not configured: ${aws.reason ?? 'pass --aws (with AWS_REGION and credentials) to read them'}; otherwise attach their exports`,
        { configured: false },
      ),
    ];
  const failed = (e: { error: string }) => ({ status: 'error' as const, summary: `could not read: ${e.error}` });
  const rows: CheckResult[] = [];

  const cr = aws.config_rules;
  if ('error' in cr) rows.push(errorRow('12.aws-config', '12.4 / 2.2', 'AWS Config rules', failed(cr).summary, cr));
  else {
    const bad = cr.rules.filter((r) => r.compliance === 'NON_COMPLIANT').map((r) => r.name);
    rows.push(
      auto(
        '12.aws-config',
        '12.4 / 2.2',
        'AWS Config rules all compliant',
        cr.rules.length > 0 && bad.length === 0,
        `${cr.rules.length} rules evaluated, none non-compliant`,
        cr.rules.length === 0
          ? 'no AWS Config rules are evaluated in this account and region'
          : `non-compliant: ${bad.join(', ')}`,
        cr,
      ),
    );
  }

  const ct = aws.cloudtrail;
  if ('error' in ct) rows.push(errorRow('10.aws-cloudtrail', '10.2.1 / 10.3.4', 'CloudTrail', failed(ct).summary, ct));
  else {
    const good = ct.trails.filter((t) => t.multi_region && t.is_logging && t.log_file_validation);
    rows.push(
      auto(
        '10.aws-cloudtrail',
        '10.2.1 / 10.3.4',
        'CloudTrail: a multi-region trail logging, with log file validation',
        good.length > 0,
        `logging: ${good.map((t) => t.name).join(', ')}`,
        ct.trails.length === 0
          ? 'no CloudTrail trail'
          : `no trail is multi-region, logging and validated: ${ct.trails.map((t) => `${t.name} (multi-region ${t.multi_region}, logging ${t.is_logging}, validation ${t.log_file_validation})`).join('; ')}`,
        ct,
      ),
    );
  }

  const ol = aws.object_lock;
  if (ol === null)
    rows.push(
      row(
        '10.aws-object-lock',
        '10.3.3 / 10.5.1',
        'Audit trail WORM bucket (S3 Object Lock)',
        'automated',
        'not_applicable',
        'the audit trail is not exported to S3 (AUDIT_EXPORT_TARGET): see the audit export row',
        null,
      ),
    );
  else if ('error' in ol)
    rows.push(errorRow('10.aws-object-lock', '10.3.3 / 10.5.1', 'S3 Object Lock', failed(ol).summary, ol));
  else {
    const ok = ol.enabled && ol.mode === 'COMPLIANCE' && (ol.retention_days ?? 0) >= MIN_LOCK_DAYS;
    rows.push(
      auto(
        '10.aws-object-lock',
        '10.3.3 / 10.5.1',
        'Audit trail WORM bucket: Object Lock in compliance mode for 12 months or more',
        ok,
        `${ol.bucket}: ${ol.mode} for ${ol.retention_days} days`,
        `${ol.bucket}: Object Lock ${ol.enabled ? 'enabled' : 'not enabled'}, mode ${ol.mode ?? 'none'}, default retention ${ol.retention_days ?? 'none'} days (needs COMPLIANCE, ${MIN_LOCK_DAYS}+)`,
        ol,
      ),
    );
  }

  const ins = aws.inspector;
  if ('error' in ins)
    rows.push(errorRow('6.aws-inspector', '6.3.3 / 11.3.1', 'Amazon Inspector', failed(ins).summary, ins));
  else {
    const n = ins.active_critical + ins.active_high;
    rows.push(
      auto(
        '6.aws-inspector',
        '6.3.3 / 11.3.1',
        'Amazon Inspector: no active critical or high findings',
        n === 0,
        'no active critical or high findings',
        `${ins.active_critical} critical and ${ins.active_high} high findings active${ins.capped ? ' (at least; the count stopped at its page limit)' : ''}`,
        ins,
      ),
    );
  }
  return rows;
}

const errorRow = (id: string, req: string, title: string, summary: string, evidence: unknown) =>
  row(id, req, title, 'automated', 'error', summary, evidence);

export function runChecks(f: ComplianceFacts, now: Date): CheckResult[] {
  const out: CheckResult[] = [];

  // --- 3: protect stored account data ---
  const sd = f.sensitive_data;
  out.push(
    auto(
      '3.3.1-sad-refused',
      '3.3.1',
      'Sensitive authentication data (CVV, PIN block, track data) is refused and has no column',
      sd.samples_missed.length === 0 && sd.suspicious_columns.length === 0 && sd.samples_refused.length > 0,
      `${sd.samples_refused.length} kinds of sensitive authentication data refused by the request guard; no column that could hold them`,
      `missed: ${sd.samples_missed.join(', ') || 'none'}; suspicious columns: ${sd.suspicious_columns.join(', ') || 'none'}`,
      sd,
    ),
  );
  if ('error' in f.keys) {
    out.push(
      row(
        '3.7.4-key-cryptoperiod',
        '3.6.1 / 3.7.4',
        'Keys within their cryptoperiod',
        'automated',
        'error',
        `could not read the key status: ${f.keys.error}`,
        f.keys,
      ),
    );
  } else {
    const overdue = f.keys.versions
      .filter((k) => k.state === 'active' && k.overdue)
      .map((k) => `${k.purpose}/${k.kind} v${k.version} (${Math.floor(k.age_days)} of ${k.cryptoperiod_days} days)`);
    if (f.keys.kek.overdue)
      overdue.push(`KEK (${Math.floor(f.keys.kek.age_days ?? 0)} of ${f.keys.kek.cryptoperiod_days} days)`);
    out.push(
      auto(
        '3.7.4-key-cryptoperiod',
        '3.6.1 / 3.7.4',
        'Every active key is within its cryptoperiod; rotation history recorded',
        overdue.length === 0 && f.keys.versions.length > 0,
        `${f.keys.versions.filter((k) => k.state === 'active').length} active data keys and the KEK within their cryptoperiods; ${f.keys.versions.length} versions on record`,
        overdue.length ? `past cryptoperiod: ${overdue.join('; ')}` : 'no data keys exist',
        f.keys,
      ),
    );
  }

  // --- 4: transmission ---
  const tlsOn = f.tls.mode !== 'off' || f.tls.behind_gateway_tls;
  const floorOk = ['TLSv1.2', 'TLSv1.3'].includes(f.tls.min_version);
  out.push(
    auto(
      '4.2.1-tls',
      '4.2.1',
      'TLS on the API with a TLS 1.2 floor (no SSL, no early TLS)',
      tlsOn && floorOk,
      `API TLS ${f.tls.behind_gateway_tls && f.tls.mode === 'off' ? 'terminated at the gateway' : `mode ${f.tls.mode}`}, minimum ${f.tls.min_version}`,
      !tlsOn
        ? 'the API serves plain HTTP (TLS_MODE=off) and no TLS gateway is declared in front'
        : `minimum version ${f.tls.min_version} is below TLS 1.2`,
      f.tls,
    ),
  );
  out.push(
    f.database_tls === null
      ? row(
          '4.2.1-db-tls',
          '4.2.1',
          'Verified TLS to PostgreSQL',
          'not_applicable',
          'not_applicable',
          'embedded PGlite: no network connection to a database',
          null,
        )
      : auto(
          '4.2.1-db-tls',
          '4.2.1',
          'Verified TLS to PostgreSQL',
          f.database_tls,
          'DATABASE_URL asks for sslmode=verify-full',
          'DATABASE_URL does not ask for sslmode=verify-full',
          { verify_full: f.database_tls },
        ),
  );

  // --- 6: secure software, WAF ---
  if (f.npm_audit.ran) {
    const c = f.npm_audit.counts;
    out.push(
      auto(
        '6.3.3-dependencies',
        '6.3.1 / 6.3.3',
        'No known high or critical vulnerabilities in dependencies (npm audit)',
        (c.high ?? 0) + (c.critical ?? 0) === 0,
        `npm audit: ${JSON.stringify(c)}`,
        `npm audit reports ${c.critical ?? 0} critical and ${c.high ?? 0} high`,
        f.npm_audit,
      ),
    );
  } else {
    out.push(
      row(
        '6.3.3-dependencies',
        '6.3.1 / 6.3.3',
        'No known high or critical vulnerabilities in dependencies (npm audit)',
        'automated',
        'not_configured',
        f.npm_audit.reason,
        f.npm_audit,
      ),
    );
  }
  // The gateway's own mode and rule-set version are checked by `tillpoint gateway check` where nginx
  // runs; this process only sees the events it records, so the row is manual with those counts.
  out.push(
    f.waf.events_file === null
      ? row(
          '6.4.2-waf',
          '6.4.2',
          'WAF in blocking mode in front of the API, with its rule set and recent blocks',
          'manual',
          'not_configured',
          'no SECURITY_EVENTS_FILE: the WAF gateway is not wired to this installation; attach `tillpoint gateway check` output or the AWS WAF web ACL',
          f.waf,
        )
      : row(
          '6.4.2-waf',
          '6.4.2',
          'WAF in blocking mode in front of the API, with its rule set and recent blocks',
          'manual',
          'manual',
          `${f.waf.blocked ?? 0} blocked and ${f.waf.detected ?? 0} detected requests in the gateway's events file; attach \`tillpoint gateway check\` (blocking mode, CRS version)`,
          f.waf,
        ),
  );
  out.push(
    auto(
      '6.4.2-rate-limits',
      '6.4.2 / 8.3.4',
      'Rate limits on, stricter on sign-in and MFA',
      f.rate_limits.enabled,
      `rate limits on; sign-in ${f.rate_limits.signin}, MFA ${f.rate_limits.mfa}`,
      'RATE_LIMIT_ENABLED is off',
      f.rate_limits,
    ),
  );
  out.push(
    manual(
      '6.2.4-secure-coding',
      '6.2.4',
      'Software engineering techniques prevent common attacks',
      'the CI run (type check, tests including the security suite over every route and the WAF attack tests)',
    ),
  );

  // --- 7 and 8: access ---
  const active = f.operators.filter((o) => o.status === 'active');
  const noMfa = active.filter((o) => !o.mfa_enrolled);
  out.push(
    auto(
      '8.4.2-mfa',
      '8.4.2 / 8.5.1',
      'Every active operator has MFA (TOTP) enrolled',
      noMfa.length === 0,
      `${active.length} active operators, all with MFA`,
      `${noMfa.length} active operator(s) without MFA: ${noMfa.map((o) => o.id).join(', ')}`,
      { active: active.length, without_mfa: noMfa.map((o) => o.id) },
    ),
  );
  const stale = active.filter((o) => o.days_since_use !== null && o.days_since_use > f.inactive_days_limit);
  out.push(
    auto(
      '8.2.6-inactive',
      '8.2.6',
      `Accounts unused for ${f.inactive_days_limit} days are disabled`,
      stale.length === 0,
      `no active operator unused for more than ${f.inactive_days_limit} days`,
      `${stale.length} active operator(s) unused for more than ${f.inactive_days_limit} days: ${stale.map((o) => o.id).join(', ')}`,
      { limit_days: f.inactive_days_limit, stale: stale.map((o) => ({ id: o.id, days_since_use: o.days_since_use })) },
    ),
  );
  const id = f.identity;
  out.push(
    auto(
      '8.2.8-8.3.4-sessions-lockout',
      '8.2.8 / 8.3.4',
      'Idle sessions end within 15 minutes; lockout after at most 10 failures for at least 30 minutes',
      id.session_idle_minutes <= 15 && id.lockout_threshold <= 10 && id.lockout_minutes >= 30,
      `idle ${id.session_idle_minutes} min, lockout after ${id.lockout_threshold} failures for ${id.lockout_minutes} min`,
      'settings looser than PCI DSS allows',
      id,
    ),
  );
  out.push(
    auto(
      '8.6.2-no-default-secrets',
      '2.2.2 / 8.6.2',
      'No default or development secrets; secrets from a secrets provider',
      f.default_secrets.length === 0 && (f.mode !== 'production' || f.keys_from_data_dir.length === 0),
      'no default secret in use',
      `default or development secrets in use: ${[...f.default_secrets, ...(f.mode === 'production' ? f.keys_from_data_dir : [])].join(', ')}`,
      { default_secrets: f.default_secrets, keys_from_data_dir: f.keys_from_data_dir, mode: f.mode },
    ),
  );
  out.push(
    manual(
      '7.2.4-access-review',
      '7.2.4',
      'User accounts and privileges reviewed every six months',
      'the signed output of `tillpoint access review --json` and who reviewed it',
    ),
  );

  // --- 10: logging ---
  const a = f.audit;
  if ('error' in a.verify) {
    out.push(
      row(
        '10.3.4-audit-verified',
        '10.2 / 10.3.4',
        'Audit trail verified against its signed tree heads',
        'automated',
        'error',
        `could not verify: ${a.verify.error}`,
        a.verify,
      ),
    );
  } else {
    const v = a.verify;
    out.push(
      auto(
        '10.3.4-audit-verified',
        '10.2 / 10.3.4',
        'Audit trail verified against its signed tree heads',
        v.ok && v.records_checked > 0,
        `${v.records_checked} records and ${v.heads_checked} signed heads verified`,
        v.ok ? 'no records to verify' : `tampering found: ${v.first_problem}`,
        { ...v, latest_head: a.latest_head },
      ),
    );
  }
  const headFresh = a.head_age_seconds !== null && a.head_age_seconds <= Math.max(3600, a.sign_interval_seconds * 10);
  out.push(
    auto(
      '10.3.4-audit-head-age',
      '10.3.4 / 10.7',
      'The latest signed tree head is recent (the signer runs)',
      headFresh || (!('error' in a.verify) && a.verify.unsealed === 0 && a.latest_head !== null),
      a.latest_head
        ? `latest head: size ${a.latest_head.tree_size}, signed ${a.latest_head.timestamp} (${Math.round(a.head_age_seconds ?? 0)} s ago)`
        : '',
      a.latest_head
        ? `latest signed head is ${Math.round(a.head_age_seconds ?? 0)} s old with records waiting`
        : 'no signed tree head exists',
      { latest_head: a.latest_head, head_age_seconds: a.head_age_seconds },
    ),
  );
  out.push(
    auto(
      '10.3.3-worm-export',
      '10.3.3',
      'Audit segments exported to write-once storage',
      a.export_target !== 'off' && a.exports > 0,
      `${a.exports} sealed segment(s) exported to ${a.export_target}; last ${a.last_export_at}`,
      a.export_target === 'off'
        ? 'AUDIT_EXPORT=off: nothing is copied to write-once storage'
        : 'no segment has been exported yet',
      { target: a.export_target, exports: a.exports, last_export_at: a.last_export_at },
    ),
  );
  out.push(
    auto(
      '10.5.1-retention',
      '10.5.1',
      'Audit logs kept 12 months, 3 immediately available',
      a.retention_months >= 12 && a.online_months >= 3,
      `retention ${a.retention_months} months, ${a.online_months} online`,
      'retention below PCI DSS minimums',
      { retention_months: a.retention_months, online_months: a.online_months },
    ),
  );
  out.push(
    manual(
      '10.6-time-sync',
      '10.6.1',
      'Clocks synchronised to a trusted time source',
      'the NTP / Amazon Time Sync configuration of every host',
    ),
  );

  // --- 11 and 12 ---
  out.push(
    manual(
      '11.3-scans',
      '11.3.1 / 11.3.2',
      'Internal and ASV external vulnerability scans quarterly',
      'the last four quarters of scan reports',
    ),
  );
  out.push(
    manual(
      '11.4-pentest',
      '11.4.1',
      'Penetration test at least yearly and after significant change',
      'the penetration test report and retest',
    ),
  );
  out.push(
    manual(
      '12.10-incident',
      '12.10.1',
      'Incident response plan',
      'the plan; README "where to look at 3 a.m." and the alert rules are its technical part',
    ),
  );
  out.push(...awsChecks(f.aws));
  out.push(
    row(
      '1-network',
      '1.x',
      'Network security controls',
      'not_applicable',
      'not_applicable',
      'network controls belong to the hosting (security groups, network policies), not to the application',
      null,
    ),
  );
  void now;
  return out;
}
