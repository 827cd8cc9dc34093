export {
  createApiKey,
  createApiKeyAuthenticator,
  parseCidr,
  type CreatedApiKey,
  type ApiKeyAuthenticator,
} from './apiKeys.ts';
export { createApiKeysService, type ApiKeysService } from './apiKeys.service.ts';
export { createIdentityService, operatorView, type IdentityService, type OperatorView } from './operators.service.ts';
export { createAuthenticator, SESSION_COOKIE, readCookie } from './authenticator.ts';
export { registerIdentityRoutes } from './identity.routes.ts';
export { ROLES, ROLE_NAMES, MERCHANT_ROLES, KEY_GRANTABLE_PERMISSIONS, permissionsFor, type Role } from './roles.ts';
export { passwordProblem, hashPassword, verifyPassword, temporaryPassword } from './passwords.ts';
export { totp, matchTotp, base32Encode, base32Decode, otpauthUri } from './totp.ts';
export {
  createApprovalsService,
  APPROVAL_KINDS,
  APPROVAL_PERMISSION,
  type ApprovalsService,
  type ApprovalView,
  type ApprovalExecutor,
  type ClaimApproval,
} from './approvals.service.ts';
export { registerApprovalRoutes, ApprovalRequired } from './approvals.routes.ts';
