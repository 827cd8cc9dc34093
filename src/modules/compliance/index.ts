export {
  runChecks,
  evidenceHash,
  type CheckResult,
  type CheckKind,
  type CheckStatus,
  type ComplianceFacts,
} from './checks.ts';
export { gatherFacts, type FactSources } from './facts.ts';
export {
  buildReport,
  signReport,
  verifyReportText,
  renderHtml,
  REPORT_FORMAT,
  type ComplianceReport,
  type SignedReport,
} from './report.ts';
