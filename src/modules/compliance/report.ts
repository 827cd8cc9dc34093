import { canonicalJson, type AuditKeys } from '../audit/index.ts';
import { evidenceHash, runChecks, type CheckResult, type ComplianceFacts } from './checks.ts';
import { createPublicKey, verify as verifySig } from 'node:crypto';

// The signed report: the checks' results with their evidence hashes, signed with the audit
// trail's Ed25519 key over the canonical JSON of `report`. The HTML form carries the same signed
// JSON inside it, so `tillpoint compliance verify` checks either file.

export const REPORT_FORMAT = 'tillpoint.compliance.v1';

export interface ComplianceReport {
  format: typeof REPORT_FORMAT;
  standard: 'PCI DSS v4.0.1';
  generated_at: string;
  installation: { mode: string; public_url: string };
  summary: {
    automated: number;
    passed: number;
    failed: number;
    errors: number;
    manual: number;
    not_applicable: number;
    not_configured: number;
    ok: boolean;
  };
  results: CheckResult[];
}

export interface SignedReport {
  report: ComplianceReport;
  signature: { alg: 'Ed25519'; key_id: string; public_key: string; value: string };
}

export function buildReport(facts: ComplianceFacts, o: { now: Date; publicUrl: string }): ComplianceReport {
  const results = runChecks(facts, o.now);
  const count = (f: (r: CheckResult) => boolean) => results.filter(f).length;
  const failed = count((r) => r.kind === 'automated' && r.status === 'fail');
  const errors = count((r) => r.kind === 'automated' && r.status === 'error');
  return {
    format: REPORT_FORMAT,
    standard: 'PCI DSS v4.0.1',
    generated_at: o.now.toISOString(),
    installation: { mode: facts.mode, public_url: o.publicUrl },
    summary: {
      automated: count((r) => r.kind === 'automated'),
      passed: count((r) => r.status === 'pass'),
      failed,
      errors,
      manual: count((r) => r.status === 'manual'),
      not_applicable: count((r) => r.status === 'not_applicable'),
      not_configured: count((r) => r.status === 'not_configured'),
      ok: failed === 0 && errors === 0,
    },
    results,
  };
}

export function signReport(
  report: ComplianceReport,
  keys: Pick<AuditKeys, 'sign' | 'keyId' | 'publicKey'>,
): SignedReport {
  const value = keys.sign(Buffer.from(canonicalJson(report)));
  return {
    report,
    signature: {
      alg: 'Ed25519',
      key_id: keys.keyId,
      public_key: Buffer.from(keys.publicKey).toString('base64'),
      value: Buffer.from(value).toString('base64'),
    },
  };
}

const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Checks a report file (JSON, or the HTML that embeds it): the signature over the canonical
 * report, each evidence hash, and, when given, that the signing key is the one expected.
 */
export function verifyReportText(
  text: string,
  expectedPublicKey?: string,
): { ok: boolean; problems: string[]; signed?: SignedReport } {
  const problems: string[] = [];
  let signed: SignedReport;
  let isHtml = false;
  try {
    const m = /<script type="application\/json" id="tillpoint-signed-report">([\s\S]*?)<\/script>/.exec(text);
    isHtml = Boolean(m);
    signed = JSON.parse(m ? m[1].replace(/\\u003c/g, '<') : text) as SignedReport;
  } catch {
    return { ok: false, problems: ['not a Tillpoint compliance report (no signed JSON found)'] };
  }
  if (signed?.report?.format !== REPORT_FORMAT || !signed.signature)
    return { ok: false, problems: ['not a Tillpoint compliance report'] };
  const raw = Buffer.from(signed.signature.public_key, 'base64');
  let good = false;
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    good =
      raw.length === 32 &&
      verifySig(null, Buffer.from(canonicalJson(signed.report)), key, Buffer.from(signed.signature.value, 'base64'));
  } catch {
    good = false;
  }
  if (!good) problems.push('the signature does not match the report (changed after signing, or signed by another key)');
  if (expectedPublicKey && expectedPublicKey !== signed.signature.public_key)
    problems.push(`signed by key ${signed.signature.key_id}, not by the expected audit signing key`);
  // Evidence hashes are inside the signed report; recomputing them shows the evidence is what was hashed.
  for (const r of signed.report.results)
    if (evidenceHash(r.evidence) !== r.evidence_sha256) problems.push(`evidence of ${r.id} does not match its hash`);
  // An HTML page must be exactly what the signed report renders to: what the assessor reads is signed too.
  if (isHtml && renderHtml(signed) !== text)
    problems.push('the page differs from the signed report it carries (the visible table was edited)');
  return { ok: problems.length === 0, problems, signed };
}

const esc = (s: unknown) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A self-contained HTML page (no external requests): summary first, then one row per check. */
export function renderHtml(signed: SignedReport): string {
  const r = signed.report;
  const s = r.summary;
  const badge = (st: string) => `<span class="b ${esc(st)}">${esc(st.replace('_', ' '))}</span>`;
  const rows = r.results
    .map(
      (c) =>
        `<tr class="${esc(c.status)}"><td>${esc(c.requirement)}</td><td>${esc(c.title)}<div class="id">${esc(c.id)}</div></td><td>${esc(c.kind)}</td><td>${badge(c.status)}</td><td>${esc(c.summary)}${c.evidence === null ? '' : `<details><summary>evidence</summary><pre>${esc(JSON.stringify(c.evidence, null, 2))}</pre></details>`}<div class="h">sha256 ${esc(c.evidence_sha256)}</div></td></tr>`,
    )
    .join('\n');
  const embedded = JSON.stringify(signed).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Tillpoint PCI DSS v4.0.1 evidence report, ${esc(r.generated_at)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.45rem;vertical-align:top;text-align:left}
.b{border-radius:3px;padding:.1rem .4rem;font-weight:600;font-size:.8rem;white-space:nowrap}.pass{background:#e3f5e6}.fail,.error{background:#fde4e1}
.manual,.not_configured{background:#fff4d6}.not_applicable{background:#eee}tr.pass,tr.manual,tr.not_applicable,tr.not_configured{background:none}
.id,.h{color:#666;font-size:.75rem;font-family:ui-monospace,monospace}pre{white-space:pre-wrap;font-size:.75rem}
.sum{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}.sum div{border:1px solid #ddd;border-radius:4px;padding:.5rem .8rem}
.verdict{font-size:1.1rem;font-weight:700}
</style></head><body>
<h1>Tillpoint: PCI DSS v4.0.1 evidence report</h1>
<p>Generated ${esc(r.generated_at)} for ${esc(r.installation.public_url)} (mode ${esc(r.installation.mode)}).</p>
<p class="verdict">${s.ok ? 'Every automated check passed.' : `${s.failed} automated check(s) failed${s.errors ? `, ${s.errors} could not run` : ''}.`}</p>
<div class="sum"><div>automated <b>${s.automated}</b></div><div>passed <b>${s.passed}</b></div><div>failed <b>${s.failed}</b></div><div>errors <b>${s.errors}</b></div><div>manual <b>${s.manual}</b></div><div>not configured <b>${s.not_configured}</b></div><div>not applicable <b>${s.not_applicable}</b></div></div>
<table><thead><tr><th>Req.</th><th>Check</th><th>Kind</th><th>Result</th><th>Finding and evidence</th></tr></thead><tbody>
${rows}
</tbody></table>
<h2>Signature</h2>
<p>Ed25519 over the canonical JSON of the report (keys sorted, no spaces), by the audit signing key <code>${esc(signed.signature.key_id)}</code>
(public key <code>${esc(signed.signature.public_key)}</code>, the key that signs the audit trail's tree heads).
Check it with <code>tillpoint compliance verify &lt;this file&gt;</code>; the signed JSON is embedded below.</p>
<script type="application/json" id="tillpoint-signed-report">${embedded}</script>
</body></html>
`;
}
