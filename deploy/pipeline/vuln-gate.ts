// The vulnerability gate of the delivery pipeline: reads the image scanner's report (Trivy JSON,
// or ECR's describe-image-scan-findings, basic or enhanced) and `npm audit --json`, and fails
// when a finding at or above the threshold (default: high) is not covered by a reviewed entry of
// the allow-list. An entry covers a finding by id (CVE or GHSA) and, if it names one, package;
// it needs a reason, a reviewer and an expiry date no more than 90 days after its review, and it
// stops covering anything the day after it expires.
//
//   node --import tsx deploy/pipeline/vuln-gate.ts --image trivy.json --npm-audit audit.json \
//     [--allow-list deploy/pipeline/vuln-allowlist.json] [--fail-on high|critical] [--today YYYY-MM-DD]
//
// Exit 0: nothing blocks. 1: blocking findings (listed). 2: unreadable input or a bad allow-list.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'unknown';
const RANK: Record<Severity, number> = { critical: 4, high: 3, medium: 2, low: 1, unknown: 0 };

export interface Finding {
  id: string;
  aliases: string[];
  pkg: string;
  version?: string;
  severity: Severity;
  source: 'image' | 'npm';
  title?: string;
}

export interface AllowEntry {
  id: string;
  package?: string;
  reason: string;
  reviewed_by: string;
  reviewed_on: string;
  expires: string;
}

export class GateInputError extends Error {}

export const MAX_ALLOW_DAYS = 90;

function severity(s: unknown): Severity {
  const v = String(s ?? '').toLowerCase();
  if (v === 'moderate') return 'medium';
  if (v === 'informational' || v === 'info' || v === 'negligible') return 'low';
  return (v in RANK ? v : 'unknown') as Severity;
}

/** Findings of an image scan: Trivy's JSON report or ECR's scan findings. */
export function imageFindings(report: any): Finding[] {
  if (Array.isArray(report?.Results)) {
    return report.Results.flatMap((r: any) => (r.Vulnerabilities ?? []).map((v: any): Finding => ({
      id: v.VulnerabilityID, aliases: [], pkg: v.PkgName, version: v.InstalledVersion, severity: severity(v.Severity), source: 'image', title: v.Title,
    })));
  }
  const f = report?.imageScanFindings;
  if (f && (Array.isArray(f.findings) || Array.isArray(f.enhancedFindings))) {
    const basic = (f.findings ?? []).map((v: any): Finding => {
      const attr = (k: string) => v.attributes?.find((a: any) => a.key === k)?.value;
      return { id: v.name, aliases: [], pkg: attr('package_name') ?? '', version: attr('package_version'), severity: severity(v.severity), source: 'image', title: v.description };
    });
    const enhanced = (f.enhancedFindings ?? []).filter((v: any) => v.status !== 'CLOSED' && v.status !== 'SUPPRESSED').flatMap((v: any) => {
      const d = v.packageVulnerabilityDetails ?? {};
      const pkgs = d.vulnerablePackages?.length ? d.vulnerablePackages : [{ name: '' }];
      return pkgs.map((p: any): Finding => ({ id: d.vulnerabilityId ?? v.title, aliases: [], pkg: p.name, version: p.version, severity: severity(v.severity), source: 'image', title: v.title }));
    });
    return [...basic, ...enhanced];
  }
  throw new GateInputError('the image report is neither Trivy JSON (Results) nor an ECR scan (imageScanFindings)');
}

/** Findings of `npm audit --json` (report version 2: one entry per advisory in "via"). */
export function npmFindings(report: any): Finding[] {
  if (report?.error) throw new GateInputError(`npm audit failed: ${report.error.summary || report.error.code || report.message || JSON.stringify(report.error)}`);
  if (report?.auditReportVersion !== 2 || typeof report.vulnerabilities !== 'object') throw new GateInputError('the npm audit report is not `npm audit --json` output (auditReportVersion 2)');
  const out: Finding[] = [];
  for (const v of Object.values<any>(report.vulnerabilities)) {
    for (const via of v.via ?? []) {
      if (typeof via !== 'object') continue; // through another package: reported under that package
      const ghsa = /GHSA-[\w-]+/.exec(via.url ?? '')?.[0];
      out.push({ id: ghsa ?? String(via.source), aliases: [String(via.source)], pkg: via.name ?? v.name, version: via.range, severity: severity(via.severity), source: 'npm', title: via.title });
    }
  }
  return out;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const day = (s: string) => Date.parse(`${s}T00:00:00Z`);

/** Checks every entry; a malformed or over-long one is an error, not a silent gap. */
export function parseAllowList(doc: any): AllowEntry[] {
  const entries = doc?.entries;
  if (!Array.isArray(entries)) throw new GateInputError('the allow-list must be {"entries": [...]}');
  return entries.map((e: any, i: number) => {
    const bad = (m: string) => new GateInputError(`allow-list entry ${i} (${e?.id ?? 'no id'}): ${m}`);
    for (const k of ['id', 'reason', 'reviewed_by', 'reviewed_on', 'expires']) if (typeof e?.[k] !== 'string' || !e[k].trim()) throw bad(`needs "${k}"`);
    if (e.reason.trim().length < 20) throw bad('the reason must say why (20 characters at least)');
    for (const k of ['reviewed_on', 'expires']) if (!DATE.test(e[k]) || Number.isNaN(day(e[k]))) throw bad(`"${k}" must be a date, YYYY-MM-DD`);
    const days = (day(e.expires) - day(e.reviewed_on)) / 86_400_000;
    if (days < 0) throw bad('expires before it was reviewed');
    if (days > MAX_ALLOW_DAYS) throw bad(`expires ${days} days after review; at most ${MAX_ALLOW_DAYS}`);
    return { id: e.id, package: e.package, reason: e.reason, reviewed_by: e.reviewed_by, reviewed_on: e.reviewed_on, expires: e.expires };
  });
}

export interface Verdict {
  blocking: Finding[];
  allowed: { finding: Finding; entry: AllowEntry }[];
  /** Entries past their expiry that match a finding (which then blocks). */
  expired: { finding: Finding; entry: AllowEntry }[];
  below: number;
}

export function judge(findings: Finding[], allow: AllowEntry[], opts: { failOn: Severity; today: string }): Verdict {
  const v: Verdict = { blocking: [], allowed: [], expired: [], below: 0 };
  const seen = new Set<string>();
  for (const f of findings) {
    const key = `${f.source}|${f.id}|${f.pkg}|${f.version ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (RANK[f.severity] < RANK[opts.failOn] && f.severity !== 'unknown') {
      v.below++;
      continue;
    }
    const matches = allow.filter((e) => (e.id === f.id || f.aliases.includes(e.id)) && (!e.package || e.package === f.pkg));
    const live = matches.find((e) => day(opts.today) <= day(e.expires));
    if (live) v.allowed.push({ finding: f, entry: live });
    else {
      v.blocking.push(f);
      for (const e of matches) v.expired.push({ finding: f, entry: e });
    }
  }
  return v;
}

function main(argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: {
    image: { type: 'string', multiple: true, default: [] }, 'npm-audit': { type: 'string', multiple: true, default: [] },
    'allow-list': { type: 'string' }, 'fail-on': { type: 'string', default: 'high' }, today: { type: 'string' },
  } });
  const failOn = severity(values['fail-on']);
  if (failOn !== 'high' && failOn !== 'critical') throw new GateInputError('--fail-on must be high or critical');
  if (!values.image!.length && !values['npm-audit']!.length) throw new GateInputError('give --image and/or --npm-audit reports');
  const read = (f: string) => {
    try {
      return JSON.parse(readFileSync(f, 'utf8'));
    } catch (e) {
      throw new GateInputError(`${f}: ${(e as Error).message}`);
    }
  };
  const findings = [...values.image!.flatMap((f) => imageFindings(read(f))), ...values['npm-audit']!.flatMap((f) => npmFindings(read(f)))];
  const allow = values['allow-list'] ? parseAllowList(read(values['allow-list'])) : [];
  const today = values.today ?? new Date().toISOString().slice(0, 10);
  const v = judge(findings, allow, { failOn, today });
  const line = (f: Finding) => `${f.severity.toUpperCase().padEnd(8)} ${f.id} ${f.pkg}${f.version ? `@${f.version}` : ''} (${f.source})${f.title ? `: ${f.title}` : ''}`;
  for (const a of v.allowed) console.log(`allowed  ${line(a.finding)} — until ${a.entry.expires}, ${a.entry.reviewed_by}: ${a.entry.reason}`);
  for (const x of v.expired) console.log(`EXPIRED allow-list entry for ${x.entry.id} (expired ${x.entry.expires}): it no longer covers ${x.finding.pkg}`);
  for (const f of v.blocking) console.log(`BLOCKING ${line(f)}`);
  console.log(`vulnerability gate: ${findings.length} findings, ${v.below} below ${failOn}, ${v.allowed.length} allowed, ${v.blocking.length} blocking -> ${v.blocking.length ? 'FAIL' : 'pass'}`);
  return v.blocking.length ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`vulnerability gate: ${(e as Error).message}`);
    process.exitCode = 2;
  }
}
