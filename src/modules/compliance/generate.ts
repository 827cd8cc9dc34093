import type { AuditKeys } from '../audit/index.ts';
import { gatherFacts, type FactSources } from './facts.ts';
import { buildReport, signReport, type SignedReport } from './report.ts';

/** Gathers the facts from the live services, decides every check and signs the report. */
export async function generateComplianceReport(
  sources: FactSources,
  keys: Pick<AuditKeys, 'sign' | 'keyId' | 'publicKey'>,
  publicUrl: string,
): Promise<SignedReport> {
  const facts = await gatherFacts(sources);
  return signReport(buildReport(facts, { now: sources.clock.now(), publicUrl }), keys);
}
