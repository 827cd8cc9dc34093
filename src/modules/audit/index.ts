export { createAuditService, type AuditService, type AuditDeps } from './audit.service.ts';
export { registerAuditRoutes } from './audit.routes.ts';
export { registerAuditHooks } from './http.ts';
export { recordDataRead } from './dataReads.ts';
export {
  createAuditWriter,
  actorOf,
  SYSTEM_ACTOR,
  insertAuditEventsSql,
  type AuditWriter,
  type AuditInput,
  type AuditRecord,
  type Actor,
  type PreparedAuditEvent,
} from './trail.ts';
export { loadAuditKeys, auditKeysFromSeed, secretFromConfigOrFile, type AuditKeys } from './keys.ts';
export { checkInclusionProof, verifyTrail, type VerifyReport, type Problem } from './verify.ts';
export { HOW_TO_CHECK, type InclusionProof, type ConsistencyProof, type TreeHead } from './tree.ts';
export { localWorm, s3Worm, type WormStore } from './worm.ts';
export * as merkle from './merkle.ts';
export { registerAuditMetrics } from './audit.metrics.ts';
export { canonicalJson } from './canonical.ts';
