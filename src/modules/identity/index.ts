export { createApiKey, createApiKeyAuthenticator, type CreatedApiKey } from './apiKeys.ts';
