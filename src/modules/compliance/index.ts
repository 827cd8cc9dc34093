export {
  runChecks,
  awsChecks,
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
export { gatherAwsEvidence, type AwsEvidence, type AwsEvidenceOptions } from './awsEvidence.ts';
export { generateComplianceReport } from './generate.ts';
export { registerComplianceRoutes, type ComplianceRouteDeps } from './compliance.routes.ts';
