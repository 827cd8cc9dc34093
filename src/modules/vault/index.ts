// The vault's public face: envelope encryption of fields, blind indexes, tokens, key rotation,
// and the refusal of sensitive authentication data. README.md beside this file has the rules.
export { createVault, type Vault, type VaultDeps } from './vault.ts';
export { type EncryptedField, type FieldCipher, type SealedField, fieldName } from './fields.ts';
export { VaultError, isVaultError, type VaultErrorCode } from './errors.ts';
export { registerVaultRoutes } from './vault.routes.ts';
export { registerSensitiveDataGuard, assertNoSensitiveAuthData, findSensitiveAuthData } from './sensitiveData.ts';
export {
  TOKEN_PURPOSES,
  type TokenPurpose,
  type TokenService,
  type DetokenizeAuditHook,
  type DetokenizeEvent,
} from './tokens.ts';
export { detokenizeAuditHook } from './auditHook.ts';
export { createTestVault } from './testing.ts';
export {
  createKeyManagerFromConfig,
  createLocalKeyManager,
  newKeyringJson,
  addKeyringVersion,
  type KeyManager,
  type KekInfo,
  KmsError,
} from './kms/index.ts';
export type { KeyKind } from './keystore.ts';
